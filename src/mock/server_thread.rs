//! Run a mock's actix server on its own thread (with its own System) for tests.

use actix_web::dev::{Server, ServerHandle};
use std::net::TcpListener;

/// A running server; dropping it stops the server and joins its thread.
pub struct ServerThread {
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Call `run` with `listener` inside a new thread's actix System and keep it serving.
    pub fn start(
        listener: TcpListener,
        run: impl FnOnce(TcpListener) -> std::io::Result<Server> + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                match run(listener) {
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
        Ok(ServerThread {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        crate::http::stop_server(self.handle.clone(), false);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
