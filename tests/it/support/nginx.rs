//! A real nginx (Debian's `/usr/sbin/nginx`) as a child process: one process
//! (`master_process off`, so killing it leaves no worker behind), its config, pid file, logs and
//! temp files in a directory of its own, on a loopback port; and THE forward-auth config that
//! the README documents (`nginx_forward_auth.conf`), for a gateway in front of the proxy.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";

/// The documented forward-auth config, with example addresses [`forward_auth_conf`] replaces.
pub const FORWARD_AUTH_CONF: &str = include_str!("nginx_forward_auth.conf");

/// The documented config for nginx on `127.0.0.1:port` in front of the proxy's main listener
/// `main`, its forward-auth listener `verify` and the API `upstream` (each `http://host:port`).
pub fn forward_auth_conf(port: u16, main: &str, verify: &str, upstream: &str) -> String {
    let server = |url: &str| {
        let authority = url.strip_prefix("http://").expect("an http:// URL");
        format!("server {};", authority.trim_end_matches('/'))
    };
    let replacements = [
        ("listen 80;", format!("listen 127.0.0.1:{port};")),
        ("server token-handler:8080;", server(main)),
        ("server token-handler:4181;", server(verify)),
        ("server api:8000;", server(upstream)),
    ];
    let mut conf = FORWARD_AUTH_CONF.to_string();
    for (example, real) in replacements {
        assert_eq!(conf.matches(example).count(), 1, "{example} once");
        conf = conf.replace(example, &real);
    }
    conf
}

/// Why nginx did not start.
#[derive(Debug)]
pub enum StartError {
    /// The port was taken before nginx bound it: try another.
    AddressInUse,
    /// Anything else (a config error, ...): the error log.
    Failed(String),
}

#[derive(Debug)]
pub struct Nginx {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with `conf_body` (the contents of `http { }`, which listens on
    /// `127.0.0.1:port`); panics when it cannot.
    pub async fn start(port: u16, conf_body: &str) -> Nginx {
        Nginx::try_start(port, conf_body)
            .await
            .unwrap_or_else(|e| panic!("nginx did not start: {e:?}"))
    }

    /// Starts nginx and waits until it accepts connections on `port`: it writes its pid file
    /// once its listening sockets are bound, then connecting succeeds. `AddressInUse` when
    /// another process has the port (nginx retries bind() for 2.5 s before it gives up).
    pub async fn try_start(port: u16, conf_body: &str) -> Result<Nginx, StartError> {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: run ./scripts/test.sh, which installs nginx"
        );
        let dir = std::env::temp_dir().join(format!(
            "th-nginx-{}-{}",
            std::process::id(),
            token_handler::crypto::random_token(6)
        ));
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let d = dir.display();
        let conf = format!(
            "daemon off;\n\
             master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             {conf_body}\n\
             }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        // -e: the log of start-up, before the config's error_log applies; -p: no path of
        // the system's nginx is used.
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { port, child, dir };
        let started = Instant::now();
        loop {
            if let Some(status) = nginx.child.try_wait().expect("try_wait") {
                let log = nginx.error_log();
                return Err(if log.contains("Address already in use") {
                    StartError::AddressInUse
                } else {
                    StartError::Failed(format!("exited with {status}:\n{log}"))
                });
            }
            let pid = std::fs::read_to_string(nginx.dir.join("nginx.pid")).unwrap_or_default();
            if pid.trim() == nginx.child.id().to_string()
                && tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            {
                return Ok(nginx);
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(StartError::Failed(format!(
                    "not listening after 10 s:\n{}",
                    nginx.error_log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The error log so far (start-up problems, `auth request unexpected status`, ...).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
