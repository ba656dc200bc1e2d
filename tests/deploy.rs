//! `deploy/` as Kubernetes reads it: every manifest a known object with no field the API would
//! drop, the kustomization naming them all, the RBAC rules exactly what the kubernetes plugin's
//! watchers request of a real API server, and the Deployment, Service and Corefile agreeing on
//! ports. (`tests/pod_eye.rs` runs the Deployment's container as it runs in a pod.)

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The files the kustomization lists, each read as JSON.
fn manifests() -> Vec<(String, Value)> {
    let kustomization: Value = yaml(&deploy_dir().join("kustomization.yaml"));
    let resources = kustomization["resources"].as_array().expect("kustomization resources");
    resources
        .iter()
        .map(|r| {
            let file = r.as_str().expect("a file name").to_string();
            let value = yaml(&deploy_dir().join(&file));
            (file, value)
        })
        .collect()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The manifest of `kind`, as its k8s-openapi type.
fn manifest<T: DeserializeOwned>(kind: &str) -> T {
    let (file, value) = manifests().into_iter().find(|(_, v)| v["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"));
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Every path to a key of `original` that `round_trip` lacks: a field the type does not know,
/// which the API server would drop (or reject, with `kubectl apply --validate=strict`).
fn unknown_fields(original: &Value, round_trip: &Value, at: &str, out: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{at}.{key}");
                match b.get(key) {
                    Some(other) => unknown_fields(value, other, &here, out),
                    // An empty or null value serialises to nothing; it is not unknown for that.
                    None if value.is_null() || value == &Value::Object(Default::default()) => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `value` through `T` and back, and the fields lost on the way.
fn lost_through<T: DeserializeOwned + serde::Serialize>(file: &str, value: &Value) -> Vec<String> {
    let typed: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    let mut lost = Vec::new();
    unknown_fields(value, &back, "", &mut lost);
    lost
}

#[test]
fn every_manifest_is_a_kubernetes_object_with_no_unknown_field() {
    let mut kinds = BTreeSet::new();
    for (file, value) in manifests() {
        let kind = value["kind"].as_str().unwrap_or_else(|| panic!("{file}: no kind")).to_string();
        let lost = match kind.as_str() {
            "ServiceAccount" => lost_through::<ServiceAccount>(&file, &value),
            "ClusterRole" => lost_through::<ClusterRole>(&file, &value),
            "ClusterRoleBinding" => lost_through::<ClusterRoleBinding>(&file, &value),
            "ConfigMap" => lost_through::<ConfigMap>(&file, &value),
            "Deployment" => lost_through::<Deployment>(&file, &value),
            "Service" => lost_through::<Service>(&file, &value),
            "PodDisruptionBudget" => lost_through::<PodDisruptionBudget>(&file, &value),
            other => panic!("{file}: unexpected kind {other}"),
        };
        assert!(lost.is_empty(), "{file}: fields the API does not know: {lost:?}");
        assert!(kinds.insert(kind), "{file}: a second object of its kind");
        if value["kind"] != "ClusterRole" && value["kind"] != "ClusterRoleBinding" {
            assert_eq!(value["metadata"]["namespace"], "kube-system", "{file}");
        }
    }
    assert_eq!(kinds.len(), 7, "{kinds:?}");
}

/// The check above finds what it looks for: a misspelt field is reported.
#[test]
fn a_misspelt_field_is_found() {
    let (file, mut value) = manifests().into_iter().find(|(_, v)| v["kind"] == "Deployment").unwrap();
    value["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["prot"] = 8181.into();
    assert_eq!(
        lost_through::<Deployment>(&file, &value),
        [".spec.template.spec.containers[0].readinessProbe.httpGet.prot"]
    );
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let listed: BTreeSet<String> = manifests().into_iter().map(|(f, _)| f).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk);
}

/// What kube-dns's users rely on: the Service's name, ClusterIP and selector, and a
/// Deployment whose pods it selects, spread, critical, and as locked down as the issue asks.
#[test]
fn the_deployment_is_what_a_cluster_expects_of_kube_dns() {
    let service: Service = manifest("Service");
    let spec = service.spec.unwrap();
    assert_eq!(service.metadata.name.as_deref(), Some("kube-dns"));
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    let selector = spec.selector.unwrap();
    assert_eq!(selector.get("k8s-app").map(String::as_str), Some("kube-dns"));

    let deployment: Deployment = manifest("Deployment");
    let spec = deployment.spec;
    assert_eq!(spec.replicas, Some(2));
    let labels = spec.template.metadata.unwrap().labels.unwrap();
    for (k, v) in &selector {
        assert_eq!(labels.get(k), Some(v), "the Service selects the pods by {k}");
    }
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-cluster-critical"));
    assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
    assert!(pod.affinity.and_then(|a| a.pod_anti_affinity).is_some(), "replicas spread across nodes");
    let account: ServiceAccount = manifest("ServiceAccount");
    assert_eq!(pod.service_account_name, account.metadata.name);
    let c = &pod.containers[0];
    assert_eq!(c.args.as_deref(), Some(&["-conf".to_string(), "/etc/coredns/Corefile".to_string()][..]));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(caps.add.as_deref(), Some(&["NET_BIND_SERVICE".to_string()][..]));
    let mount =
        c.volume_mounts.as_ref().unwrap().iter().find(|m| m.mount_path == "/etc/coredns").expect("/etc/coredns");
    let volume = pod.volumes.unwrap().into_iter().find(|v| v.name == mount.name).unwrap();
    let config: ConfigMap = manifest("ConfigMap");
    assert_eq!(volume.config_map.unwrap().name, config.metadata.name.unwrap());

    let binding: ClusterRoleBinding = manifest("ClusterRoleBinding");
    let role: ClusterRole = manifest("ClusterRole");
    assert_eq!(Some(binding.role_ref.name), role.metadata.name);
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!((subject.kind.as_str(), Some(&subject.name)), ("ServiceAccount", account.metadata.name.as_ref()));
    let pdb: PodDisruptionBudget = manifest("PodDisruptionBudget");
    let pdb_selector = pdb.spec.unwrap().selector.unwrap().match_labels.unwrap();
    assert!(pdb_selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
}

/// The Corefile in the ConfigMap is kubeadm's, and this build accepts it as it is.
#[test]
fn the_configmap_corefile_is_kubeadms_and_validates() {
    let config: ConfigMap = manifest("ConfigMap");
    let corefile = &config.data.unwrap()["Corefile"];
    for line in [
        "kubernetes cluster.local in-addr.arpa ip6.arpa {",
        "forward . /etc/resolv.conf {",
        "cache 30 {",
        "loop",
        "reload",
    ] {
        assert!(corefile.lines().any(|l| l.trim() == line), "{line:?} not in the ConfigMap's Corefile");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Corefile");
    std::fs::write(&path, corefile).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterdns"))
        .args(["-validate", "-conf"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "-validate: {}", String::from_utf8_lossy(&out.stderr));
}

/// The ClusterRole grants exactly what the kubernetes plugin asks a real API server for, with
/// every watcher on (`pods verified`, `namespace_labels`): `list` and `watch` of each resource,
/// nothing missing and nothing more.
#[test]
fn the_rbac_rules_are_exactly_what_the_watchers_request() {
    use clusterdns_test_apiserver::{StreamingLists, TestApiServer};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(TestApiServer::builder().start()).unwrap();
    // A server without streaming lists, so the watchers both list and watch, as they do on
    // most clusters today; with them a watch alone carries the initial state.
    api.set_streaming_lists(StreamingLists::Reject);
    let corefile = format!(
        "cluster.local {{\n    kubernetes {{\n        kubeconfig {}\n        pods verified\n        namespace_labels team\n    }}\n}}\n",
        api.kubeconfig_path().display()
    );
    let server = common::TestServer::start(&corefile);
    let asked = |requests: &[clusterdns_test_apiserver::RequestRecord]| -> BTreeSet<(String, String, String)> {
        requests.iter().filter_map(|r| resource_verb(&r.path, &r.query)).collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = asked(&api.requests());
    while seen.iter().filter(|(_, _, v)| v == "watch").count() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        seen = asked(&api.requests());
    }
    drop(server);

    let role: ClusterRole = manifest("ClusterRole");
    let mut granted = BTreeSet::new();
    for rule in role.rules.unwrap() {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    assert_eq!(seen, granted, "requested by the watchers (left) and granted (right)");
}

/// The RBAC (group, resource, verb) of an API request path, None for discovery and other
/// non-resource paths.
fn resource_verb(path: &str, query: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
        _ => return None,
    };
    let resource = match rest {
        [resource] => resource,
        ["namespaces", _, resource] => resource,
        _ => return None,
    };
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    Some((group, resource.to_string(), if watch { "watch" } else { "list" }.to_string()))
}
