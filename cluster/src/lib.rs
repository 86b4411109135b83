//! Services found in Kubernetes: Services labelled `runboard.io/service` become registered
//! services, described by their annotations, and come, change and go as the cluster says.

mod annotations;
mod discovery;
mod port_forward;

pub use annotations::LABEL;
pub use discovery::{ClusterError, client, discover};
