//! The kubeconfig that reaches the server, as kubectl and kube-rs read it.

/// The context, cluster and user name in written kubeconfigs.
pub const CONTEXT: &str = "clusterdns-test";

/// A kubeconfig for `server` (`https://…` or `http://…`), trusting `ca_pem` and presenting
/// `token`, with `default` as the context's namespace.
pub(crate) fn render(server: &str, ca_pem: Option<&str>, token: &str) -> String {
    use base64::Engine;
    // Values are written as JSON strings, which YAML reads as double-quoted scalars.
    let quote = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let mut cluster = format!("    server: {}\n", quote(server));
    if let Some(ca) = ca_pem {
        let data = base64::engine::general_purpose::STANDARD.encode(ca);
        cluster.push_str(&format!("    certificate-authority-data: {}\n", quote(&data)));
    }
    // kubectl prompts for a password when a user has no credentials, so there is always a token.
    let user = format!("    token: {}\n", quote(token));
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n{cluster}users:\n- name: {CONTEXT}\n  user:\n{user}\
         contexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: default\n\
         current-context: {CONTEXT}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_reads_it() {
        let text = render("https://127.0.0.1:6443", Some("-----BEGIN CERTIFICATE-----\n"), "t\"ok");
        let config = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(config.current_context.as_deref(), Some(CONTEXT));
        let cluster = config.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert!(cluster.certificate_authority_data.is_some());
        let user = config.auth_infos[0].auth_info.as_ref().unwrap();
        use kube::config::AuthInfo;
        let AuthInfo { token, .. } = user;
        assert!(token.is_some());

        let plain = kube::config::Kubeconfig::from_yaml(&render("http://127.0.0.1:1", None, "t")).unwrap();
        assert!(plain.clusters[0].cluster.as_ref().unwrap().certificate_authority_data.is_none());
    }
}
