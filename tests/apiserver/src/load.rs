//! Loading objects from files: gen-cluster's `{"Kind": [object, ...]}`, or a `v1` `List`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::value::RawValue;

use crate::object::ClusterObject;
use crate::server::Shared;
use crate::{Kind, ObjectError};

/// What a load put into the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Objects loaded, per kind.
    pub counts: BTreeMap<Kind, usize>,
    /// The server's resourceVersion once they were in.
    pub resource_version: u64,
}

impl LoadSummary {
    /// Objects loaded, of all kinds.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

/// Why a file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not JSON of either accepted shape.
    #[error("{0}: expected {{\"Kind\": [object, ...]}} (as gen-cluster writes) or a List: {1}")]
    Format(String, serde_json::Error),
    /// One of the objects was refused.
    #[error("{kind} #{index}: {source}")]
    Object {
        /// The kind, as the file names it.
        kind: String,
        /// The object's position in its kind's list.
        index: usize,
        /// Why it was refused.
        source: ObjectError,
    },
}

/// How many objects are decoded before they are written to the store, so decoded objects never
/// pile up in memory.
const BATCH: usize = 16 * 1024;

pub(crate) fn load_file(shared: &Shared, path: &Path) -> Result<LoadSummary, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
    load_bytes(shared, &bytes).map_err(|e| match e {
        LoadError::Format(_, source) => LoadError::Format(path.display().to_string(), source),
        other => other,
    })
}

/// Decodes every object of `bytes` (either shape) without applying them, for the control
/// endpoint's small bodies.
pub(crate) fn decode_bytes(bytes: &[u8]) -> Result<Vec<(String, ClusterObject)>, LoadError> {
    let format = |e| LoadError::Format("body".into(), e);
    let top: BTreeMap<String, &RawValue> = serde_json::from_slice(bytes).map_err(format)?;
    let mut objects = Vec::new();
    if let Some(items) = top.get("items") {
        let items: Vec<serde_json::Value> = serde_json::from_str(items.get()).map_err(format)?;
        for (index, value) in items.into_iter().enumerate() {
            let refuse = |source| LoadError::Object { kind: "List item".into(), index, source };
            let object = ClusterObject::from_json(value).map_err(refuse)?;
            objects.push((object.key().map_err(refuse)?, object));
        }
        return Ok(objects);
    }
    for (name, raws) in &top {
        let kind = Kind::from_kind_name(name).ok_or_else(|| LoadError::Object {
            kind: name.clone(),
            index: 0,
            source: ObjectError::UnknownKind(name.clone()),
        })?;
        let raws: Vec<&RawValue> = serde_json::from_str(raws.get()).map_err(format)?;
        objects.extend(decode_parallel(kind, &raws, 0)?);
    }
    Ok(objects)
}

pub(crate) fn load_bytes(shared: &Shared, bytes: &[u8]) -> Result<LoadSummary, LoadError> {
    let format = |e| LoadError::Format("objects".into(), e);
    // Split into objects without decoding them: they are decoded, in parallel, batch by batch.
    let top: BTreeMap<String, &RawValue> = serde_json::from_slice(bytes).map_err(format)?;
    let mut summary = LoadSummary::default();
    if let Some(items) = top.get("items") {
        let items: Vec<&RawValue> = serde_json::from_str(items.get()).map_err(format)?;
        let mut objects = Vec::with_capacity(items.len());
        for (index, raw) in items.into_iter().enumerate() {
            let refuse = |source| LoadError::Object { kind: "List item".into(), index, source };
            let value = serde_json::from_str(raw.get()).map_err(format)?;
            let object = ClusterObject::from_json(value).map_err(refuse)?;
            let key = object.key().map_err(refuse)?;
            *summary.counts.entry(object.kind()).or_default() += 1;
            objects.push((key, object));
        }
        summary.resource_version = shared.store.write().apply(objects);
        return Ok(summary);
    }
    for name in top.keys() {
        if Kind::from_kind_name(name).is_none() {
            return Err(LoadError::Object {
                kind: name.clone(),
                index: 0,
                source: ObjectError::UnknownKind(name.clone()),
            });
        }
    }
    // Namespaces first, as a cluster has them before what lives in them.
    for kind in Kind::ALL {
        let Some(raws) = top.get(kind.info().kind) else {
            continue;
        };
        let raws: Vec<&RawValue> = serde_json::from_str(raws.get()).map_err(format)?;
        for (batch_index, batch) in raws.chunks(BATCH).enumerate() {
            let objects = decode_parallel(kind, batch, batch_index * BATCH)?;
            shared.store.write().apply(objects);
        }
        summary.counts.insert(kind, raws.len());
    }
    summary.resource_version = shared.store.read().rv();
    Ok(summary)
}

/// Decodes `raws` into objects on every core; decoding is most of a load's time.
fn decode_parallel(
    kind: Kind,
    raws: &[&RawValue],
    first_index: usize,
) -> Result<Vec<(String, ClusterObject)>, LoadError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = raws.len().div_ceil(threads).max(1);
    let decode = |offset: usize, part: &[&RawValue]| -> Result<Vec<(String, ClusterObject)>, LoadError> {
        part.iter()
            .enumerate()
            .map(|(i, raw)| {
                let refuse =
                    |source| LoadError::Object { kind: kind.to_string(), index: first_index + offset + i, source };
                let object = ClusterObject::from_json_str(kind, raw.get()).map_err(refuse)?;
                Ok((object.key().map_err(refuse)?, object))
            })
            .collect()
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = raws
            .chunks(per_thread)
            .enumerate()
            .map(|(n, part)| scope.spawn(move || decode(n * per_thread, part)))
            .collect();
        let mut objects = Vec::with_capacity(raws.len());
        for handle in handles {
            objects.extend(handle.join().expect("decoding does not panic")?);
        }
        Ok(objects)
    })
}
