//! The `token-handler` binary: args → Config::load → tracing → bind → serve until SIGTERM → drain.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use token_handler::app::App;
use token_handler::config::Config;
use token_handler::crypto::KeyRing;
use token_handler::ended::Kind;
use tracing::{debug, error, info, warn};

// The data path allocates small, short-lived buffers per request; mimalloc serves them with
// fewer instructions than glibc's malloc (measured in BENCHMARKS.md). Built with `no_thp`:
// transparent huge pages on its arenas cost 7 MB of RSS for nothing measurable. Called through
// alloc/ (the workspace's one crate with `unsafe`), which skips mimalloc's aligned path for
// blocks whose alignment it has anyway.
#[global_allocator]
static ALLOCATOR: token_handler_alloc::Mimalloc = token_handler_alloc::Mimalloc;

/// Exit status for an invalid configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "token-handler",
    version,
    about = "Token handler (BFF) reverse proxy: sealed cookies in, Bearer tokens out"
)]
struct Cli {
    /// Run the proxy with this config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config file (and the secrets in the environment); list every problem.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print a new random cookie key as `kid:base64`, for TOKEN_HANDLER_COOKIE_KEYS.
    Keygen,
    /// Operate on live sessions (needs [coordination]: writes the record all replicas read).
    Sessions {
        #[command(subcommand)]
        action: SessionsCommand,
    },
    /// Run the self-contained demo: a development IdP, a demo API and SPA, and the proxy.
    #[cfg(feature = "demo")]
    Demo {
        /// Where the proxy listens (loopback only).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Lifetime of the development IdP's access tokens.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        access_token_ttl: std::time::Duration,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// End sessions on every replica, without the IdP: every session of a user (`--sub`, those
    /// begun by now) or of one IdP session (`--sid`). Each is refused on its next request
    /// (401 login_required) and its refresh token revoked once.
    End {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The user's `sub` (the ID token's subject). Opaque: it may begin with `-`.
        #[arg(
            long,
            required_unless_present = "sid",
            conflicts_with = "sid",
            allow_hyphen_values = true
        )]
        sub: Option<String>,
        /// The IdP session's `sid` (the ID token's session id; base64url ones may begin with
        /// `-`).
        #[arg(long, allow_hyphen_values = true)]
        sid: Option<String>,
    },
}

fn main() -> ExitCode {
    let start_up = token_handler_alloc::pages::StartUp::note();
    let cli = Cli::parse();
    let env = |name: &str| std::env::var(name).ok();
    match cli.command {
        Some(Command::Keygen) => {
            println!("{}", KeyRing::generate_spec());
            ExitCode::SUCCESS
        }
        #[cfg(feature = "demo")]
        Some(Command::Demo {
            listen,
            access_token_ttl,
        }) => {
            let log = token_handler::config::LogConfig {
                format: token_handler::config::LogFormat::Text,
                level: "info".into(),
                access_log: false,
            };
            // Without traces: the subscriber needs no runtime.
            let _ = token_handler::telemetry::init(&log, None);
            let options = token_handler::demo::run::DemoOptions {
                listen,
                access_token_ttl,
            };
            match runtime(0).block_on(token_handler::demo::run::run(options, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Sessions {
            action: SessionsCommand::End { config, sub, sid },
        }) => {
            let loaded = match Config::load(&config, &env) {
                Ok(loaded) => loaded,
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let (kind, value, what) = match (sub, sid) {
                (Some(sub), _) => (Kind::Sub, sub, "sub"),
                (None, Some(sid)) => (Kind::Sid, sid, "sid"),
                (None, None) => unreachable!("clap requires --sub or --sid"),
            };
            match runtime(1).block_on(token_handler::ended::operator::end(&loaded, kind, &value)) {
                Ok(entry) => {
                    println!(
                        "{}",
                        serde_json::json!({ "ended": what, "at": entry.at, "until": entry.until })
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sessions end: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Check { config }) => match Config::load(&config, &env) {
            Ok(loaded) => {
                let summary = token_handler::config::report::summary(&loaded);
                println!("{}: OK ({summary})", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        None => {
            let Some(path) = cli.config else {
                eprintln!("usage: token-handler --config FILE   (see --help)");
                return ExitCode::from(EXIT_CONFIG);
            };
            let config = match Config::load(&path, &env) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let runtime = server_runtime(&config.server);
            // The trace exporter sends its batches from a task of this runtime.
            let telemetry = {
                let _inside = runtime.enter();
                token_handler::telemetry::init(&config.log, config.telemetry.as_ref())
            };
            let telemetry = match telemetry {
                Ok(telemetry) => telemetry,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(config, telemetry, start_up)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The serving runtime: `worker_threads` threads (0 = one per core). One worker gets the
/// current-thread scheduler: no work-stealing machinery or cross-thread wake-ups on the data
/// path (measured in BENCHMARKS.md). So does `scheduler = "per_core"`: this runtime is its
/// first worker, and the others start with the app (`server::workers`).
fn server_runtime(server: &token_handler::config::ServerConfig) -> tokio::runtime::Runtime {
    let per_core = server.scheduler == token_handler::config::Scheduler::PerCore;
    runtime(if per_core { 1 } else { server.worker_threads })
}

/// A runtime of `workers` threads (0 = one per core; 1: the current-thread scheduler).
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if workers > 1 {
            b.worker_threads(workers);
        }
        b
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    Startup(#[from] token_handler::app::StartupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("serving failed: {0}")]
    Serve(#[source] std::io::Error),
}

async fn serve(
    config: Config,
    telemetry: token_handler::telemetry::Telemetry,
    start_up: token_handler_alloc::pages::StartUp,
) -> Result<(), ServeError> {
    let listen = config.server.listen;
    let app = App::start(config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    // The admin (and forward-auth) listeners outlive the proxy's drain, so /readyz can say
    // "shutting down" and gateways get answers while in-flight requests finish.
    let admin_done = tokio_util::sync::CancellationToken::new();
    if let Some(admin_addr) = app.config.server.admin_listen {
        let admin = tokio::net::TcpListener::bind(admin_addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: admin_addr,
                source,
            })?;
        let done = admin_done.clone();
        tokio::spawn(token_handler::admin::run(
            admin,
            Arc::clone(&app),
            async move { done.cancelled().await },
        ));
    }
    if let Some(forward_auth) = &app.config.forward_auth {
        let verify = tokio::net::TcpListener::bind(forward_auth.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: forward_auth.listen,
                source,
            })?;
        let done = admin_done.clone();
        tokio::spawn(token_handler::server::run_forward_auth(
            verify,
            Arc::clone(&app),
            async move { done.cancelled().await },
        ));
    }
    if app.config.server.release_start_up_pages {
        // Start-up is over (configuration, certificate roots, listeners): the code that only it
        // ran need not stay mapped (BENCHMARKS.md, "What the RSS is made of").
        match start_up.release() {
            Ok(released) => debug!(
                mappings = released.mappings,
                resident_bytes = released.resident_bytes,
                "start-up pages released"
            ),
            Err(e) => warn!(error = %e, "start-up pages could not be released"),
        }
    }
    let result = token_handler::server::run(listener, app, shutdown_signal()).await;
    admin_done.cancel();
    // The spans of the requests just drained go out before the process does.
    telemetry.shutdown().await;
    result.map_err(ServeError::Serve)?;
    info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("SIGINT received"),
        () = term => info!("SIGTERM received"),
    }
}
