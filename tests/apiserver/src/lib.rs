//! A Kubernetes API server for clusterdns's tests and benchmarks: list and watch as
//! kube-apiserver speaks them.
//!
//! It serves core/v1 Namespaces, Services and Pods and discovery.k8s.io/v1 EndpointSlices over
//! HTTPS (or HTTP) to kube-rs, kubectl or anything else that reads a kubeconfig: lists with
//! `limit`/`continue` pagination and selectors, watches with bookmarks, streaming lists and 410
//! Gone, and the discovery documents. Tests change objects and inject faults through
//! [`TestApiServer`]; the `clusterdns-apiserver` binary serves a gen-cluster file to a person.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use clusterdns_test_apiserver::{Kind, PauseMode, TestApiServer};
//!
//! let api = TestApiServer::builder().https().token("t").start().await?;
//! let client = api.kube_client().await?; // or point anything at api.kubeconfig_path()
//! api.pause(PauseMode::Hold);
//! api.drop_watches();
//! api.delete(Kind::Service, "default", "web");
//! api.compact(); // the resumed watches get 410 and relist
//! api.resume();
//! # Ok(()) }
//! ```

mod body;
mod control;
mod http;
mod kind;
mod kubeconfig;
mod load;
mod object;
mod selector;
mod server;
mod status;
mod store;
mod tls;
mod watch;

pub use kind::{Kind, KindInfo};
pub use kubeconfig::CONTEXT as KUBECONFIG_CONTEXT;
pub use load::{LoadError, LoadSummary};
pub use object::{ClusterObject, ObjectError};
pub use server::{Builder, Error, ObjectRef, PauseMode, RequestRecord, StreamingLists, TestApiServer};
pub use tls::ClientCertificate;
