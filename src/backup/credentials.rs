//! S3 settings from the usual AWS variables and the shared credentials file, as the AWS tools
//! read them. Pure: the caller reads the file. Secrets live in [`Secret`], whose `Debug` and
//! `Display` never show them.

use std::collections::BTreeMap;
use std::fmt;

/// A secret string: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that signs requests.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Keys {
    /// Static keys (variables or the credentials file).
    Static { access_key_id: String, secret_access_key: Secret, session_token: Option<Secret> },
    /// A Kubernetes service-account token exchanged for keys (AWS_WEB_IDENTITY_TOKEN_FILE and
    /// AWS_ROLE_ARN), left to the S3 client.
    WebIdentity,
}

/// How to reach an S3 or S3-compatible store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Settings {
    pub region: String,
    /// A custom endpoint (S3-compatible stores); requests are path-style there.
    pub endpoint: Option<String>,
    pub keys: Keys,
    /// Where the keys were found, for messages ("AWS_ACCESS_KEY_ID", "/root/.aws/credentials
    /// [default]"): never the keys.
    pub keys_from: String,
}

/// The shared credentials file to read, if any: `AWS_SHARED_CREDENTIALS_FILE`, else
/// `$HOME/.aws/credentials`.
pub(crate) fn credentials_file_path(env: &BTreeMap<String, String>) -> Option<String> {
    non_empty(env, "AWS_SHARED_CREDENTIALS_FILE").or_else(|| {
        non_empty(env, "HOME").map(|home| format!("{}/.aws/credentials", home.trim_end_matches('/')))
    })
}

/// Resolve the settings. `endpoint_flag` is `--s3-endpoint`; `credentials_file` is the path and
/// text of the shared credentials file when it could be read.
pub(crate) fn resolve(
    env: &BTreeMap<String, String>,
    endpoint_flag: Option<&str>,
    credentials_file: Option<(&str, &str)>,
) -> Result<S3Settings, String> {
    let region = non_empty(env, "AWS_REGION")
        .or_else(|| non_empty(env, "AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = endpoint_flag
        .map(str::to_string)
        .filter(|e| !e.trim().is_empty())
        .or_else(|| non_empty(env, "AWS_ENDPOINT_URL_S3"))
        .or_else(|| non_empty(env, "AWS_ENDPOINT_URL"));
    if let Some(endpoint) = &endpoint {
        check_endpoint(endpoint)?;
    }
    let (keys, keys_from) = keys(env, credentials_file)?;
    Ok(S3Settings { region, endpoint, keys, keys_from })
}

fn keys(
    env: &BTreeMap<String, String>,
    credentials_file: Option<(&str, &str)>,
) -> Result<(Keys, String), String> {
    let id = non_empty(env, "AWS_ACCESS_KEY_ID");
    let secret = non_empty(env, "AWS_SECRET_ACCESS_KEY");
    match (id, secret) {
        (Some(access_key_id), Some(secret)) => {
            let session_token = non_empty(env, "AWS_SESSION_TOKEN").map(Secret::new);
            let keys = Keys::Static { access_key_id, secret_access_key: Secret::new(secret), session_token };
            return Ok((keys, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()));
        }
        (Some(_), None) => {
            return Err(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both (from the same Secret)"
                    .into(),
            )
        }
        (None, Some(_)) => {
            return Err(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both (from the same Secret)"
                    .into(),
            )
        }
        (None, None) => {}
    }
    let profile = non_empty(env, "AWS_PROFILE").unwrap_or_else(|| "default".into());
    if let Some((path, text)) = credentials_file {
        if let Some(keys) = profile_keys(text, &profile, path)? {
            return Ok((keys, format!("{path} [{profile}]")));
        }
    }
    if non_empty(env, "AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && non_empty(env, "AWS_ROLE_ARN").is_some() {
        return Ok((Keys::WebIdentity, "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN".into()));
    }
    let file_note = match credentials_file {
        Some((path, _)) => format!("{path} has no profile [{profile}] with keys"),
        None => "no credentials file was found".into(),
    };
    Err(format!(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE (and AWS_PROFILE), or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN ({file_note})"
    ))
}

/// The keys of `[profile]` in an AWS credentials file (INI). Errors never quote the file.
fn profile_keys(text: &str, profile: &str, path: &str) -> Result<Option<Keys>, String> {
    let mut section: Option<String> = None;
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            section = Some(name.strip_prefix("profile ").unwrap_or(name).trim().to_string());
            continue;
        }
        if section.as_deref() != Some(profile) {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            values.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let id = values.get("aws_access_key_id").filter(|v| !v.is_empty());
    let secret = values.get("aws_secret_access_key").filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(Keys::Static {
            access_key_id: id.clone(),
            secret_access_key: Secret::new(secret.clone()),
            session_token: values
                .get("aws_session_token")
                .filter(|v| !v.is_empty())
                .map(|t| Secret::new(t.clone())),
        })),
        (None, None) => Ok(None),
        _ => Err(format!(
            "{path} [{profile}] has only one of aws_access_key_id and aws_secret_access_key: give both"
        )),
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let lower = endpoint.to_ascii_lowercase();
    let rest = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains('@') => Ok(()),
        Some(rest) if rest.contains('@') => {
            Err("the S3 endpoint has user information: credentials never go in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into())
        }
        _ if crate::backup::location::has_userinfo(endpoint) => {
            Err("the S3 endpoint has user information: credentials never go in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into())
        }
        _ => Err(format!(
            "S3 endpoint {:?} is not an http:// or https:// URL: give one such as http://minio.backup:9000",
            crate::backup::location::display_url(endpoint)
        )),
    }
}

fn non_empty(env: &BTreeMap<String, String>, name: &str) -> Option<String> {
    env.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const FILE: &str = "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s3cr3t-default\n\n[profile backup]\naws_access_key_id=AKIDBACKUP\naws_secret_access_key=s3cr3t-backup\naws_session_token=tok3n\n[half]\naws_access_key_id=AKIDHALF\n";

    fn static_id(settings: &S3Settings) -> &str {
        match &settings.keys {
            Keys::Static { access_key_id, .. } => access_key_id,
            Keys::WebIdentity => "web-identity",
        }
    }

    type Vars<'a> = &'a [(&'a str, &'a str)];
    type File<'a> = Option<(&'a str, &'a str)>;

    #[test]
    fn keys_come_from_variables_then_the_file_then_web_identity() {
        let file = Some(("/root/.aws/credentials", FILE));
        let table: &[(Vars, File, &str)] = &[
            (&[("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "x")], file, "AKIDENV"),
            (&[], file, "AKIDDEFAULT"),
            (&[("AWS_PROFILE", "backup")], file, "AKIDBACKUP"),
            (&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ROLE_ARN", "arn:r")], None, "web-identity"),
            (&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ROLE_ARN", "arn:r")], file, "AKIDDEFAULT"),
        ];
        for (vars, file, want) in table {
            let settings = resolve(&env(vars), None, *file).expect("resolves");
            assert_eq!(static_id(&settings), *want, "{vars:?}");
        }
    }

    #[test]
    fn region_and_endpoint_follow_flag_then_variables() {
        let keys = [("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")];
        let plain = resolve(&env(&keys), None, None).expect("resolves");
        assert_eq!((plain.region.as_str(), plain.endpoint.as_deref()), ("us-east-1", None));
        let mut vars = keys.to_vec();
        vars.extend([("AWS_DEFAULT_REGION", "eu-west-1"), ("AWS_ENDPOINT_URL", "http://general:9000")]);
        let s = resolve(&env(&vars), None, None).expect("resolves");
        assert_eq!((s.region.as_str(), s.endpoint.as_deref()), ("eu-west-1", Some("http://general:9000")));
        vars.extend([("AWS_REGION", "eu-north-1"), ("AWS_ENDPOINT_URL_S3", "http://s3-only:9000")]);
        let s = resolve(&env(&vars), None, None).expect("resolves");
        assert_eq!((s.region.as_str(), s.endpoint.as_deref()), ("eu-north-1", Some("http://s3-only:9000")));
        let s = resolve(&env(&vars), Some("https://flag:443"), None).expect("resolves");
        assert_eq!(s.endpoint.as_deref(), Some("https://flag:443"));
    }

    #[test]
    fn missing_or_partial_keys_and_bad_endpoints_are_one_clear_line_without_secrets() {
        let table: &[(Vars, Option<&str>, Option<&str>, &str)] = &[
            (&[], None, None, "no S3 credentials"),
            (
                &[],
                None,
                Some("[other]\naws_access_key_id=a\naws_secret_access_key=b\n"),
                "has no profile [default]",
            ),
            (&[("AWS_ACCESS_KEY_ID", "a")], None, None, "AWS_SECRET_ACCESS_KEY is not"),
            (&[("AWS_SECRET_ACCESS_KEY", "hunter2")], None, None, "AWS_ACCESS_KEY_ID is not"),
            (&[("AWS_PROFILE", "half")], None, Some(FILE), "only one of"),
            (
                &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "hunter2")],
                Some("minio:9000"),
                None,
                "not an http",
            ),
            (
                &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "hunter2")],
                Some("http://u:hunter2@minio"),
                None,
                "user information",
            ),
            (
                &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "x")],
                Some("ftp://u:hunter2@minio"),
                None,
                "user information",
            ),
            (
                &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "x")],
                Some("minio.backup:hunter2@9000"),
                None,
                "user information",
            ),
        ];
        for (vars, endpoint, file, want) in table {
            let file = file.map(|text| ("/c", text));
            let err = resolve(&env(vars), *endpoint, file).expect_err(want);
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("hunter2") && !err.contains("s3cr3t") && !err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = resolve(&env(&[("AWS_PROFILE", "backup")]), None, Some(("/c", FILE))).expect("resolves");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t") && !shown.contains("tok3n"), "{shown}");
        assert_eq!(s.keys_from, "/c [backup]");
        assert_eq!(
            credentials_file_path(&env(&[("HOME", "/root/")])).as_deref(),
            Some("/root/.aws/credentials")
        );
    }
}
