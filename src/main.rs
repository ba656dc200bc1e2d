//! The clusterdns command: CoreDNS's flags, then the server until a signal stops it.

use std::process::ExitCode;

use clusterdns::cli::{self, USAGE};
use clusterdns::plugins::ORDER;
use clusterdns::server::{Options, Server, config, listen};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if cli.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if cli.version {
        println!("clusterdns-{}", env!("CARGO_PKG_VERSION"));
        println!("{}/{}, rust", std::env::consts::OS, std::env::consts::ARCH);
        return ExitCode::SUCCESS;
    }
    if cli.plugins {
        println!("Server types:\n  dns\n\nPlugins, in execution order:");
        for p in ORDER {
            println!("  dns.{}", p.name);
        }
        return ExitCode::SUCCESS;
    }
    if cli.validate {
        return validate(&cli);
    }

    clusterdns::logging::init();
    // As Go's runtime does for CoreDNS: the soft descriptor limit up to the hard one, so DNS
    // connections are bounded by what the system allows, not by a shell's default of 1,024.
    if let Err(e) = listen::raise_descriptor_limit() {
        tracing::warn!("cannot raise the open file limit to its hard limit: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options { conf: cli.conf.clone(), dns_port: cli.dns_port, quiet: cli.quiet, ..Options::default() };
    runtime.block_on(async {
        let server = match Server::start(opts).await {
            Ok(s) => s,
            Err(e) => {
                for line in e.to_string().lines() {
                    eprintln!("{line}");
                }
                return ExitCode::FAILURE;
            }
        };
        if let Some(pidfile) = &cli.pidfile
            && let Err(e) = std::fs::write(pidfile, format!("{}\n", std::process::id()))
        {
            eprintln!("cannot write pidfile {}: {e}", pidfile.display());
            server.shutdown().await;
            return ExitCode::FAILURE;
        }
        let result = server.run_until_signal().await;
        if let Some(pidfile) = &cli.pidfile {
            let _ = std::fs::remove_file(pidfile);
        }
        match result {
            Ok(stopped) => ExitCode::from(stopped.exit_code()),
            Err(e) => {
                eprintln!("cannot handle signals: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `-validate`: parse the Corefile and every directive, bind nothing, report every error. With
/// no `-conf` and no `./Corefile` it checks the built-in default, as the server would start it.
fn validate(cli: &cli::Cli) -> ExitCode {
    let (name, text) = match &cli.conf {
        None if !std::path::Path::new("Corefile").exists() => {
            ("the built-in default Corefile".to_string(), config::default_corefile(cli.dns_port))
        }
        conf => {
            let path = conf.clone().unwrap_or_else(|| "Corefile".into());
            match std::fs::read_to_string(&path) {
                Ok(text) => (path.display().to_string(), text),
                Err(e) => {
                    eprintln!("{}: cannot read the Corefile: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let parsed = clusterdns::corefile::parse_str(&name, &text, &|k| std::env::var(k).ok());
    let result = parsed.map_err(Into::into).and_then(|c| {
        for w in &c.warnings {
            eprintln!("warning: {w}");
        }
        config::plan(&c, cli.dns_port)
    });
    match result {
        Ok(plan) => {
            println!("{name}: valid, {} server block(s)", plan.blocks.len());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}
