# Sourced by the bench scripts that profile or measure one proxy: a free loopback port, the
# fixed nginx upstream (`return 200 "ok\n"`) and the proxy's configuration (public paths under
# /public/, a TokenIDP that is never called).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# write_upstream DIR PORT [WORKER_CONNECTIONS]: $DIR/up.conf (temp files under $DIR/tmp).
write_upstream() {
  local dir=$1 port=$2 connections=${3:-4096}
  mkdir -p "$dir/tmp"
  cat > "$dir/up.conf" <<EOF
worker_processes 1; daemon off; pid $dir/up.pid; error_log $dir/up.err warn;
events { worker_connections $connections; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $dir/tmp/b;
  proxy_temp_path $dir/tmp/p; fastcgi_temp_path $dir/tmp/f; uwsgi_temp_path $dir/tmp/u;
  scgi_temp_path $dir/tmp/s;
  server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } } }
EOF
}

# write_reference DIR LISTEN_PORT UPSTREAM_PORT [WORKERS]: $DIR/ref.conf, the reference proxy of
# bench/run.sh (examples/bench/nginx.rs): proxy_pass with upstream keep-alive and the fixed
# Authorization. One worker runs without a master process (callgrind then sees the one process).
write_reference() {
  local dir=$1 listen=$2 upstream=$3 workers=${4:-1} master=off
  [ "$workers" -eq 1 ] || master=on
  mkdir -p "$dir/tmp"
  cat > "$dir/ref.conf" <<EOF
worker_processes $workers; master_process $master; daemon off; pid $dir/ref.pid; error_log $dir/ref.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 120s;
  large_client_header_buffers 4 64k; client_body_temp_path $dir/tmp/rb;
  proxy_temp_path $dir/tmp/rp; fastcgi_temp_path $dir/tmp/rf; uwsgi_temp_path $dir/tmp/ru;
  scgi_temp_path $dir/tmp/rs;
  upstream api { server 127.0.0.1:$upstream; keepalive 64; }
  server { listen 127.0.0.1:$listen; location / { proxy_pass http://api; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_set_header Authorization "Bearer bench-access-token"; } } }
EOF
}

# write_proxy DIR LISTEN_PORT ADMIN_PORT UPSTREAM_PORT: $DIR/th.toml, one worker thread;
# upstream.client from BENCH_UPSTREAM_CLIENT (default direct, as the product), server.scheduler from
# BENCH_SCHEDULER (default work_stealing), server.http1 from BENCH_HTTP1 (default direct, as the product).
write_proxy() {
  local dir=$1 listen=$2 admin=$3 upstream=$4
  cat > "$dir/th.toml" <<EOF
[server]
listen = "127.0.0.1:$listen"
admin_listen = "127.0.0.1:$admin"
worker_threads = 1
scheduler = "${BENCH_SCHEDULER:-work_stealing}"
http1 = "${BENCH_HTTP1:-direct}"
[upstream]
url = "http://127.0.0.1:$upstream"
client = "${BENCH_UPSTREAM_CLIENT:-direct}"
[idp]
dialect = "tokenidp"
issuer = "http://127.0.0.1:9"
token_endpoint = "http://127.0.0.1:9/token"
authorization_endpoint = "http://127.0.0.1:9/authorize"
jwks_uri = "http://127.0.0.1:9/jwks"
client_id = "bench"
redirect_uri = "http://127.0.0.1/auth/callback"
[proxy]
public_paths = ["/public/"]
[log]
level = "warn"
EOF
}
