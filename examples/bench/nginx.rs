//! The nginx processes of the benchmark: a fixed upstream (`return 200`) and the reference
//! proxy (`proxy_pass` with upstream keep-alive and a static Authorization header), each with
//! one worker process (the reference proxy: as many as token-handler's worker threads).

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Nginx {
    pub child: Child,
}

impl Nginx {
    fn start(
        dir: &Path,
        name: &str,
        server_block: &str,
        extra_http: &str,
        workers: usize,
    ) -> Nginx {
        let conf = dir.join(format!("{name}.conf"));
        let tmp = dir.join(format!("{name}-tmp"));
        std::fs::create_dir_all(&tmp).expect("nginx temp dir");
        let t = tmp.display();
        std::fs::write(
            &conf,
            format!(
                "worker_processes {workers};\ndaemon off;\npid {dir}/{name}.pid;\nerror_log {dir}/{name}.err warn;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 120s;\n  large_client_header_buffers 4 64k;\n\
                   client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fcgi;\n\
                   uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n{extra_http}\n  server {{\n{server_block}\n  }}\n}}\n",
                dir = dir.display(),
            ),
        )
        .expect("write nginx conf");
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx (is it installed? bench/run.sh installs it)");
        Nginx { child }
    }

    /// `return 200` on `port`.
    pub fn upstream(dir: &Path, port: u16) -> Nginx {
        Nginx::start(
            dir,
            "upstream",
            &format!("    listen 127.0.0.1:{port};\n    location / {{ return 200 \"ok\\n\"; }}"),
            "",
            1,
        )
    }

    /// `proxy_pass` to the upstream, keep-alive, `Authorization: Bearer <token>` set, with
    /// `workers` worker processes.
    pub fn reference(
        dir: &Path,
        port: u16,
        upstream_port: u16,
        token: &str,
        workers: usize,
    ) -> Nginx {
        Nginx::start(
            dir,
            "reference",
            &format!(
                "    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://api;\n      \
                 proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      \
                 proxy_set_header Authorization \"Bearer {token}\";\n    }}"
            ),
            &format!("  upstream api {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}"),
            workers,
        )
    }

    /// The `n` worker pids (where the requests are served), once they are all up.
    pub fn workers(&self, n: usize) -> Vec<u32> {
        let master = self.child.id();
        for _ in 0..100 {
            let workers = super::procfs::children(master);
            if workers.len() >= n {
                return workers;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        vec![master]
    }

    /// The single worker's pid (where the requests are served).
    pub fn worker(&self) -> u32 {
        let master = self.child.id();
        for _ in 0..100 {
            if let Some(&w) = super::procfs::children(master).first() {
                return w;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        master
    }
}

impl Drop for Nginx {
    /// SIGTERM to the master (its fast shutdown stops the worker too); SIGKILL would orphan
    /// the worker, left running with its connections.
    fn drop(&mut self) {
        let master = self.child.id();
        let workers = super::procfs::children(master);
        let signal = |sig: &str, pid: u32| {
            let _ = Command::new("kill")
                .args([sig, &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM", master);
        let _ = self.child.wait();
        for worker in workers {
            if super::procfs::alive(worker) {
                signal("-KILL", worker);
            }
        }
    }
}
