//! DNS over TCP (RFC 7766): length-prefixed messages, several queries pipelined on one
//! connection and answered as each completes, an idle timeout, and a bound on connections.
//!
//! Each connection has a reader (this task) and a writer task joined by a bounded channel: the
//! reader never loses a partly read message to a write, and a client that stops reading stalls
//! only its own connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use super::InFlight;
use super::dispatch::{Handled, Meta, ZoneTable};
use crate::dns::Proto;

/// Connections open at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 1000;
/// How long a connection may sit without a complete query before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries of one connection being answered at once; reading pauses beyond this.
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 64;

/// Accepts connections until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    table: Arc<ArcSwap<ZoneTable>>,
    mut stop: watch::Receiver<bool>,
    inflight: Arc<InFlight>,
) {
    let local = listener.local_addr().expect("bound listener has an address");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        let (stream, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("tcp {local}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (table, stop, guard) = (table.clone(), stop.clone(), inflight.enter());
        tokio::spawn(async move {
            let _ = connection(stream, client, local, table, stop).await;
            drop((slot, guard));
        });
    }
}

async fn connection(
    stream: TcpStream,
    client: SocketAddr,
    local: SocketAddr,
    table: Arc<ArcSwap<ZoneTable>>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(MAX_IN_FLIGHT_PER_CONNECTION);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let mut framed = Vec::with_capacity(msg.len() + 2);
            framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            framed.extend_from_slice(&msg);
            if wr.write_all(&framed).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_CONNECTION));
    let mut msg = Vec::new();
    loop {
        let read = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            r = tokio::time::timeout(IDLE_TIMEOUT, read_message(&mut rd, &mut msg)) => r,
        };
        match read {
            Ok(Ok(true)) => {}
            // Closed by the client, a read error, or idle too long.
            Ok(Ok(false)) | Ok(Err(_)) | Err(_) => break,
        }
        let meta = Meta { client, local, proto: Proto::Tcp, received: Instant::now() };
        let mut out = Vec::with_capacity(512);
        let table = table.load_full();
        match table.handle(&msg, meta, &mut out) {
            Handled::Drop => {}
            Handled::Reply => {
                if tx.send(out).await.is_err() {
                    break;
                }
            }
            Handled::Pending(pending) => {
                let permit = in_flight.clone().acquire_owned().await.expect("semaphore never closed");
                let tx = tx.clone();
                tokio::spawn(async move {
                    pending.finish(&mut out).await;
                    let _ = tx.send(out).await;
                    drop(permit);
                });
            }
        }
    }
    // Replies still being made hold senders; the writer ends when the last is sent.
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// Reads one length-prefixed message into `msg`; false on a clean end of stream.
async fn read_message(rd: &mut tokio::net::tcp::OwnedReadHalf, msg: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 2];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u16::from_be_bytes(len) as usize;
    msg.resize(len, 0);
    rd.read_exact(msg).await?;
    Ok(true)
}
