//! Building the names answers point at: `<service>.<ns>.svc.<zone>` and
//! `<endpoint>.<service>.<ns>.svc.<zone>` (SRV targets, PTR targets, NS records).

use super::index::EndpointView;
use super::qname::dashed;
use crate::dns::{MAX_NAME_LEN, Name};

/// Builds names without a heap allocation per name (a [`Name`] of up to 64 bytes is inline).
#[derive(Default)]
pub struct NameBuilder {
    /// Scratch space for an endpoint's dashed address.
    dashed: String,
}

impl NameBuilder {
    pub fn new() -> NameBuilder {
        NameBuilder::default()
    }

    /// `[<endpoint>.]<service>.<ns>.svc.<zone>`, or `None` if it is longer than a name may be.
    /// The endpoint's label is its hostname (or pod name), else its dashed address.
    pub fn service(
        &mut self,
        endpoint: Option<&EndpointView<'_>>,
        service: &str,
        ns: &str,
        zone: &Name,
    ) -> Option<Name> {
        let mut wire = [0u8; MAX_NAME_LEN];
        let mut len = 0;
        let mut push = |label: &[u8]| -> Option<()> {
            let end = len + 1 + label.len();
            if label.is_empty() || label.len() > 63 || end > MAX_NAME_LEN {
                return None;
            }
            wire[len] = label.len() as u8;
            wire[len + 1..end].copy_from_slice(label);
            len = end;
            Some(())
        };
        if let Some(e) = endpoint {
            match e.name {
                Some(name) => push(name.as_bytes())?,
                None => {
                    dashed(e.ip, &mut self.dashed);
                    push(self.dashed.as_bytes())?
                }
            }
        }
        push(service.as_bytes())?;
        push(ns.as_bytes())?;
        push(b"svc")?;
        let zone = zone.as_wire();
        let wire = wire.get_mut(..len + zone.len())?;
        wire[len..].copy_from_slice(zone);
        Name::from_wire(wire).ok()
    }

    /// The label an endpoint is named by, into `out`: its hostname, else its dashed address.
    pub fn endpoint_label<'b>(&'b mut self, e: &EndpointView<'b>) -> &'b str {
        match e.name {
            Some(name) => name,
            None => {
                dashed(e.ip, &mut self.dashed);
                &self.dashed
            }
        }
    }
}
