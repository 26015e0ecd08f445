//! `imserver`: parses flags, sets up logging, binds, runs until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use imserver::config::{Config, Durability, WritePath};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "The imserver instant-messaging server")]
struct Args {
    /// TOML config file; flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7700).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of the HTTP admin API and health checks (default 127.0.0.1:7701; "" = off).
    #[arg(long)]
    http_listen: Option<String>,
    /// Data directory (default ./data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// sync (fdatasync before every ack, the default) or wal (survives a process crash only).
    #[arg(long)]
    durability: Option<Durability>,
    /// writer (one writer thread, the default) or shards (each shard writes its own groups).
    #[arg(long)]
    write_path: Option<WritePath>,
    /// true: plain TCP sessions run on their user's shard thread after login.
    #[arg(long)]
    sessions_on_shards: Option<bool>,
    /// Number of shards (default: half the cores, at least 1).
    #[arg(long)]
    shards: Option<usize>,
    /// Threads running connections (default: half the cores, at least 1).
    #[arg(long)]
    io_threads: Option<usize>,
    /// TLS certificate chain (PEM): the TCP port and the HTTP listener then speak TLS only.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut cfg = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(h) = args.http_listen {
        cfg.http_listen = h;
    }
    if let Some(d) = args.data {
        cfg.data_dir = d;
    }
    if let Some(d) = args.durability {
        cfg.durability = d;
    }
    if let Some(w) = args.write_path {
        cfg.write_path = w;
    }
    if let Some(b) = args.sessions_on_shards {
        cfg.sessions_on_shards = b;
    }
    if let Some(s) = args.shards {
        cfg.shards = s;
    }
    if let Some(n) = args.io_threads {
        cfg.io_threads = n;
    }
    if let (Some(c), Some(k)) = (args.tls_cert, args.tls_key) {
        cfg.tls.cert = c;
        cfg.tls.key = k;
    }
    raise_nofile(cfg.limits.max_connections);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cfg.io_thread_count()).enable_all().build()?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
        let http = match cfg.http_listen.as_str() {
            "" => None,
            a => Some(tokio::net::TcpListener::bind(a).await.with_context(|| format!("binding {a}"))?),
        };
        // One line, one write: whoever reads the address may close the pipe after it.
        let http_addr = match &http {
            Some(h) => h.local_addr()?.to_string(),
            None => "off".into(),
        };
        let tls = match (cfg.tls.enabled(), cfg.tls.tcp, cfg.tls.http) {
            (false, _, _) => "off",
            (true, true, true) => "on both",
            (true, true, false) => "on tcp",
            (true, false, true) => "on http",
            (true, false, false) => "on neither",
        };
        println!(
            "imserver listening on {} (data in {}, durability {:?}, http {http_addr}, tls {tls})",
            listener.local_addr()?,
            cfg.data_dir.display(),
            cfg.durability
        );
        let reload = std::sync::Arc::new(tokio::sync::Notify::new());
        reload_on_sighup(reload.clone())?;
        imserver::run_with(listener, http, cfg, shutdown_signal(), reload).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

/// SIGHUP re-reads the TLS certificate and key.
fn reload_on_sighup(reload: std::sync::Arc<tokio::sync::Notify>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the TLS certificate");
            reload.notify_one();
        }
    });
    Ok(())
}

/// Each connection is a file descriptor: raise the soft limit to the hard one, and say so when
/// the connection limit cannot fit.
fn raise_nofile(max_connections: usize) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    if !ok || (lim.rlim_cur as usize) < max_connections + 256 {
        tracing::warn!(
            limit = lim.rlim_cur,
            max_connections,
            "the open-file limit is below limits.max_connections + 256"
        );
    }
}
