//! Run a mock's actix-web server on its own thread and port (tests, benchmarks).

use actix_web::dev::ServerHandle;
use std::net::{SocketAddr, TcpListener};

/// A server on its own thread; stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Bind 127.0.0.1:0 and serve `make()` (called on the server thread).
    pub fn start<F>(make: F) -> std::io::Result<Self>
    where
        F: FnOnce(TcpListener) -> std::io::Result<actix_web::dev::Server> + Send + 'static,
    {
        Self::on(TcpListener::bind("127.0.0.1:0")?, make)
    }

    /// Serve `make(listener)` on a new thread with its own actix System.
    pub fn on<F>(listener: TcpListener, make: F) -> std::io::Result<Self>
    where
        F: FnOnce(TcpListener) -> std::io::Result<actix_web::dev::Server> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                match make(listener) {
                    Ok(srv) => {
                        let _ = tx.send(Ok(srv.handle()));
                        let _ = srv.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
        });
        let handle = rx.recv().map_err(std::io::Error::other)??;
        Ok(Running {
            addr,
            handle,
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        stop_server(self.handle.clone());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Stop a server at once from any thread, even one already driving an async runtime
/// (a test's tokio runtime): the stop future is driven on a thread of its own.
fn stop_server(handle: ServerHandle) {
    let t = std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)));
    let _ = t.join();
}
