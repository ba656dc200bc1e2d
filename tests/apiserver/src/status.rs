//! The `Status` bodies kube-apiserver answers failures with, and the codes and reasons it uses.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, Status, StatusCause, StatusDetails};

use crate::Kind;

/// A failed request, as the `Status` object (and HTTP status code) the client gets.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError(pub Box<Status>);

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError(Box::new(Status {
            code: Some(code.into()),
            message: Some(message.into()),
            reason: Some(reason.into()),
            status: Some("Failure".into()),
            ..Status::default()
        }))
    }

    /// The HTTP status code.
    pub(crate) fn code(&self) -> u16 {
        self.0.code.and_then(|c| u16::try_from(c).ok()).unwrap_or(500)
    }

    /// The `Status` as JSON.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).expect("Status serializes")
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// A path the server has no handler for.
    pub(crate) fn no_such_path() -> Self {
        let mut e = Self::new(404, "NotFound", "the server could not find the requested resource");
        e.0.details = Some(StatusDetails::default());
        e
    }

    /// A named object that does not exist.
    pub(crate) fn not_found(kind: Kind, name: &str) -> Self {
        let plural = kind.info().plural;
        let mut e = Self::new(404, "NotFound", format!("{plural} {name:?} not found"));
        e.0.details = Some(StatusDetails {
            name: Some(name.into()),
            group: Some(kind.info().group.into()).filter(|g: &String| !g.is_empty()),
            kind: Some(plural.into()),
            ..StatusDetails::default()
        });
        e
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    pub(crate) fn not_acceptable(accept: &str) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json (not {accept:?}; this test server serves no Table, PartialObjectMetadata, YAML or protobuf)"
            ),
        )
    }

    /// 410 for a continue token whose snapshot is no longer available. Like kube-apiserver, it
    /// hands back a token that continues from the same place against the current state.
    pub(crate) fn continue_expired(inconsistent_continue: String) -> Self {
        let mut e = Self::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list \
             without the continue parameter, or use the continue token in this response to retrieve the remainder of \
             the results. Continuing with the provided token results in an inconsistent list - objects that were \
             created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        );
        e.0.metadata = ListMeta { continue_: Some(inconsistent_continue), ..ListMeta::default() };
        e
    }

    /// 410 for an exact-resourceVersion list older than the history the server keeps.
    pub(crate) fn list_expired() -> Self {
        Self::new(410, "Expired", "The resourceVersion for the provided list is too old.")
    }

    /// 410 for a watch from a resourceVersion older than the history the server keeps, with the
    /// message the watch cache gives.
    pub(crate) fn watch_expired(requested: u64, oldest: u64) -> Self {
        Self::new(410, "Expired", format!("too old resource version: {requested} ({oldest})"))
    }

    /// 504 for a resourceVersion the server has not reached within the wait it allows.
    pub(crate) fn too_large_resource_version(requested: u64, current: u64) -> Self {
        let mut e = Self::new(504, "Timeout", format!("Too large resource version: {requested}, current: {current}"));
        e.0.details = Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("ResourceVersionTooLarge".into()),
                message: Some("Too large resource version".into()),
                ..StatusCause::default()
            }]),
            retry_after_seconds: Some(1),
            ..StatusDetails::default()
        });
        e
    }

    /// 422 for list or watch options that contradict each other.
    pub(crate) fn invalid_list_options(field: &str, detail: &str) -> Self {
        let mut e = Self::new(422, "Invalid", format!("ListOptions.meta.k8s.io \"\" is invalid: {field}: {detail}"));
        e.0.details = Some(StatusDetails {
            group: Some("meta.k8s.io".into()),
            kind: Some("ListOptions".into()),
            causes: Some(vec![StatusCause {
                field: Some(field.into()),
                message: Some(detail.into()),
                reason: Some("FieldValueForbidden".into()),
            }]),
            ..StatusDetails::default()
        });
        e
    }

    pub(crate) fn service_unavailable() -> Self {
        Self::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request (paused by the test)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_kube_apiserver() {
        let body: serde_json::Value =
            serde_json::from_slice(&ApiError::not_found(Kind::Service, "web").to_json()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "services \"web\" not found", "reason": "NotFound",
                "details": {"name": "web", "kind": "services"}, "code": 404
            })
        );
        let expired = ApiError::continue_expired("tok".into());
        assert_eq!(expired.code(), 410);
        assert_eq!(expired.0.metadata.continue_.as_deref(), Some("tok"));
        assert_eq!(ApiError::watch_expired(5, 9).0.message.as_deref(), Some("too old resource version: 5 (9)"));
    }
}
