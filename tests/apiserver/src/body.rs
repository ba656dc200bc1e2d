//! Response bodies: small ones whole, lists built chunk by chunk from stored objects, and watch
//! streams fed through a channel.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use tokio::sync::mpsc;

use crate::store::Object;

/// How much of a list or watch stream goes into one write.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The body of every response.
pub(crate) enum ApiBody {
    Full(Full<Bytes>),
    List(ListBody),
    Stream(mpsc::Receiver<Result<Bytes, io::Error>>),
}

impl ApiBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        ApiBody::Full(Full::new(bytes.into()))
    }
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut *self {
            ApiBody::Full(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            ApiBody::List(list) => Poll::Ready(list.next_chunk().map(|c| Ok(Frame::data(c)))),
            ApiBody::Stream(rx) => rx.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ApiBody::Full(full) => full.is_end_stream(),
            ApiBody::List(list) => list.head.is_empty() && list.next >= list.items.len() && list.tail.is_empty(),
            ApiBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ApiBody::Full(full) => full.size_hint(),
            ApiBody::List(list) => SizeHint::with_exact(list.remaining as u64),
            ApiBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// A JSON list: `head`, the items separated by commas, `tail`; written in chunks of about
/// [`CHUNK`] bytes as the connection takes them, so a list of 300,000 pods is never one buffer.
pub(crate) struct ListBody {
    head: Vec<u8>,
    items: Vec<Arc<Object>>,
    next: usize,
    tail: Vec<u8>,
    remaining: usize,
}

impl ListBody {
    pub(crate) fn new(head: Vec<u8>, items: Vec<Arc<Object>>, tail: Vec<u8>) -> Self {
        let separators = items.len().saturating_sub(1);
        let remaining = head.len() + items.iter().map(|o| o.json.len()).sum::<usize>() + separators + tail.len();
        ListBody { head, items, next: 0, tail, remaining }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        let mut chunk = std::mem::take(&mut self.head);
        while chunk.len() < CHUNK && self.next < self.items.len() {
            if self.next > 0 {
                chunk.push(b',');
            }
            chunk.extend_from_slice(&self.items[self.next].json);
            self.next += 1;
        }
        if self.next == self.items.len() {
            chunk.append(&mut self.tail);
        }
        self.remaining -= chunk.len();
        (!chunk.is_empty()).then(|| Bytes::from(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_body_joins_items_and_knows_its_length() {
        let items: Vec<_> = (0..5000)
            .map(|i| Arc::new(Object { rv: i, json: format!("{{\"n\":\"{i:040}\"}}").into_bytes().into() }))
            .collect();
        let mut body = ListBody::new(b"{\"items\":[".to_vec(), items, b"]}".to_vec());
        let expected = body.remaining;
        let mut out = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = body.next_chunk() {
            out.extend_from_slice(&chunk);
            chunks += 1;
        }
        assert!(chunks > 1, "a large list goes out in several chunks");
        assert_eq!(out.len(), expected);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 5000);

        let mut empty = ListBody::new(b"[".to_vec(), vec![], b"]".to_vec());
        assert_eq!(empty.next_chunk().as_deref(), Some(&b"[]"[..]));
        assert_eq!(empty.next_chunk(), None);
    }
}
