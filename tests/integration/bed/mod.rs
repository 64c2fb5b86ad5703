//! The pod bed: pods as network + UTS + PID + mount namespaces, a real DNS server publishing the
//! headless service, and volumes that outlive pods.
pub mod dns_server;
