//! `server.release_start_up_pages`: once serving, the real binary unmaps the code pages only
//! start-up ran, and serves on (the data path maps back what it runs).

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_gives_back_its_start_up_code_pages_and_serves_on() {
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let echo = echo::Echo::start().await;
    let config = |release: bool| {
        let release = format!("release_start_up_pages = {release}");
        config_toml(
            &idp.url(),
            &echo.url(),
            "tokenidp",
            &[
                ("server", "admin_listen = \"127.0.0.1:0\""),
                ("server", &release),
                ("proxy", "public_paths = [\"/public/\"]"),
            ],
        )
    };
    let kept = child::Running::start(&config(false), KEY1).await;
    let released = child::Running::start(&config(true), KEY1).await;
    let mut file_bytes = Vec::new();
    for proxy in [&kept, &released] {
        // The same work in both before measuring: a request through the data path.
        let answer = client()
            .get(format!("http://{}/public/after-start-up?x=1", proxy.addr))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), 200);
        assert_eq!(echo.last().uri, "/public/after-start-up?x=1");
        file_bytes.push(proxy.rss_file());
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "file-backed RSS after start-up and one request: {:.1} MiB kept, {:.1} MiB released",
        mib(file_bytes[0]),
        mib(file_bytes[1])
    );
    // Release build: 8.6 against 5.7 MiB (BENCHMARKS.md); the debug build's binary is larger.
    assert!(
        file_bytes[1] * 10 < file_bytes[0] * 8,
        "released {:.1} MiB is not 20 % under kept {:.1} MiB",
        mib(file_bytes[1]),
        mib(file_bytes[0])
    );
}
