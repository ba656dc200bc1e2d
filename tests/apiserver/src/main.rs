//! `clusterdns-apiserver`: serves a simulated cluster (a gen-cluster `objects.json`) as
//! kube-apiserver would, for running clusterdns or kubectl against it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use clusterdns_test_apiserver::{Kind, TestApiServer};

/// Serve Namespaces, Services, Pods and EndpointSlices from a file with the Kubernetes API's list,
/// watch and discovery, over HTTPS with a generated CA and a bearer token, and write a kubeconfig.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Objects to serve: gen-cluster's objects.json ({"Kind": [object, ...]}) or a v1 List. Repeatable.
    #[arg(long, value_name = "FILE")]
    objects: Vec<PathBuf>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    address: IpAddr,
    /// Where to write the kubeconfig that reaches the server.
    #[arg(long, value_name = "PATH")]
    kubeconfig_out: PathBuf,
    /// The bearer token clients must present; a random one by default.
    #[arg(long)]
    token: Option<String>,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    http: bool,
    /// Events of each kind kept for watches to resume from; older resourceVersions get 410.
    #[arg(long, default_value_t = 10_000)]
    history_limit: usize,
    /// Seconds between BOOKMARK events on watches that allow them.
    #[arg(long, default_value_t = 60)]
    bookmark_interval: u64,
    /// Serve the control endpoint (faults and object changes from another process, plain HTTP)
    /// on 127.0.0.1 at this port (0 picks a free one). Off by default.
    #[arg(long, value_name = "PORT")]
    control_port: Option<u16>,
    /// Also take client certificates signed by a client CA made at start, in place of the token,
    /// and write into this directory `client.crt`, `client.key`, `client-ca.crt` and the serving
    /// CA `ca.crt` (clusterdns: `tls DIR/client.crt DIR/client.key DIR/ca.crt`).
    #[arg(long, value_name = "DIR")]
    client_certs_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_writer(std::io::stderr).init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("clusterdns-apiserver: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = TestApiServer::builder()
        .bind(SocketAddr::new(args.address, args.port))
        .history_limit(args.history_limit)
        .bookmark_interval(Duration::from_secs(args.bookmark_interval.max(1)))
        .kubeconfig_path(&args.kubeconfig_out);
    if args.http {
        builder = builder.http();
    }
    if let Some(token) = args.token {
        builder = builder.token(token);
    }
    if args.client_certs_out.is_some() {
        builder = builder.client_certificates();
    }
    if let Some(port) = args.control_port {
        builder = builder.control(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    // The objects are loaded before the kubeconfig is written: a client that starts as soon as
    // the kubeconfig appears must find the whole cluster, not an empty one.
    for file in &args.objects {
        builder = builder.objects_file(file);
    }
    let started = Instant::now();
    let api = builder.start().await?;
    let counts: Vec<String> = Kind::ALL.into_iter().map(|kind| format!("{} {kind:?}", api.count(kind))).collect();
    eprintln!("clusterdns-apiserver: loaded {} from {} file(s)", counts.join(", "), args.objects.len());
    eprintln!(
        "clusterdns-apiserver: serving {} at resourceVersion {} (ready in {:.2?}); kubeconfig: {}",
        api.url(),
        api.resource_version(),
        started.elapsed(),
        api.kubeconfig_path().display()
    );
    if let (Some(dir), Some(issued), Some(ca)) = (&args.client_certs_out, api.client_certificate(), api.ca_pem()) {
        std::fs::create_dir_all(dir)?;
        for (file, pem) in
            [("client.crt", &issued.cert_pem), ("client.key", &issued.key_pem), ("client-ca.crt", &issued.ca_pem)]
        {
            std::fs::write(dir.join(file), pem)?;
        }
        std::fs::write(dir.join("ca.crt"), ca)?;
        eprintln!("clusterdns-apiserver: client certificate and CAs in {}", dir.display());
    }
    if let Some(control) = api.control_addr() {
        eprintln!("clusterdns-apiserver: control endpoint on http://{control}");
    }
    shutdown_signal().await?;
    eprintln!("clusterdns-apiserver: stopping");
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
