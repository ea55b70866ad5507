//! A TCP proxy a test can cut and restore, to play a network fault between a process
//! under test and a real service (RabbitMQ, Redis) without stopping the service,
//! which other tests share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy on `127.0.0.1`. It runs on its own thread and runtime, so sync
/// tests (that drive binaries) and async tests can both use it. Dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    generation: watch::Sender<u64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    cut: AtomicBool,
    n_accepted: AtomicUsize,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When no port can be bound (test support: a panic is the failure report).
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            n_accepted: AtomicUsize::new(0),
        });
        let (generation, generation_rx) = watch::channel(0u64);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread =
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fault proxy runtime");
                runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("fault proxy bind");
                addr_tx.send(listener.local_addr().expect("fault proxy address")).ok();
                let accept = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else { continue };
                        thread_shared.n_accepted.fetch_add(1, Ordering::SeqCst);
                        if thread_shared.cut.load(Ordering::SeqCst) {
                            drop(client);
                            continue;
                        }
                        let mut generation = generation_rx.clone();
                        let born = *generation.borrow_and_update();
                        tokio::spawn(async move {
                            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                            let mut client = client;
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = async {
                                    while generation.changed().await.is_ok() {
                                        if *generation.borrow() != born {
                                            break;
                                        }
                                    }
                                } => {}
                            }
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stop_rx => {}
                }
            });
            });
        let addr = addr_rx.recv().expect("fault proxy did not start");
        FaultProxy {
            addr,
            shared,
            generation,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where clients connect instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection and refuses new ones until [`FaultProxy::restore`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Closes every open connection once, but keeps accepting new ones: a blip.
    pub fn drop_connections(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Connections accepted so far (reconnects show up here).
    pub fn n_accepted(&self) -> usize {
        self.shared.n_accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn echo_server() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn roundtrip(stream: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf)?;
        Ok(buf.to_vec())
    }

    #[test]
    fn forwards_until_cut_and_again_after_restore() {
        let proxy = FaultProxy::start(echo_server());
        let mut stream = std::net::TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(roundtrip(&mut stream).unwrap(), b"ping");

        proxy.cut();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            roundtrip(&mut stream).is_err(),
            "an open connection is closed by a cut"
        );
        let mut refused = std::net::TcpStream::connect(proxy.addr()).unwrap();
        refused
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert!(
            roundtrip(&mut refused).is_err(),
            "a new connection is dropped while cut"
        );

        proxy.restore();
        let mut again = std::net::TcpStream::connect(proxy.addr()).unwrap();
        again
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(roundtrip(&mut again).unwrap(), b"ping");
        assert!(proxy.n_accepted() >= 3);
    }
}
