//! A real SMTP server for tests: aiosmtpd (Python) as a child process,
//! accepting mail (AUTH PLAIN/LOGIN for [`USER`]/[`PASSWORD`], optional
//! STARTTLS with a self-signed certificate) and writing each message as a
//! `.eml` file plus a `.json` summary parsed by Python's `email` package.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The login the server accepts.
pub const USER: &str = "prognos";
/// The password the server accepts.
pub const PASSWORD: &str = "s3cret-pw";

const SERVER_PY: &str = r#"
import sys, os, ssl, json, itertools, signal, time, email
from email import policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, outdir, cert, key, user, password = sys.argv[1:7]
counter = itertools.count()

def summary(raw):
    msg = email.message_from_bytes(raw, policy=policy.default)
    parts = []
    for part in msg.walk():
        entry = {"type": part.get_content_type(), "cid": part.get("Content-ID"),
                 "disposition": part.get_content_disposition()}
        if not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            entry["len"] = len(payload)
            if part.get_content_maintype() == "text":
                entry["text"] = part.get_content()
            elif payload[:8] == b"\x89PNG\r\n\x1a\n":
                entry["png"] = True
        parts.append(entry)
    return {"subject": msg.get("Subject"), "message_id": msg.get("Message-ID"),
            "x_prognos_key": msg.get("X-Prognos-Key"), "from": msg.get("From"),
            "to": msg.get("To"), "parts": parts}

class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        raw = envelope.original_content or envelope.content
        info = summary(raw)
        info.update({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                     "auth": session.auth_data if session.authenticated else None,
                     "tls": session.ssl is not None})
        base = os.path.join(outdir, "%04d" % n)
        # Written under a temporary name then renamed: readers never see half a file.
        with open(base + ".eml.tmp", "wb") as f:
            f.write(raw)
        with open(base + ".json.tmp", "w") as f:
            json.dump(info, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        return "250 OK queued"

def authenticator(server, session, envelope, mechanism, auth_data):
    if (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
            and auth_data.password == password.encode()):
        return AuthResult(success=True, auth_data=user)
    return AuthResult(success=False, handled=False)

ctx = None
if cert:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

controller = Controller(Handler(), hostname="127.0.0.1", port=int(port),
                        authenticator=authenticator, auth_require_tls=False,
                        tls_context=ctx, require_starttls=ctx is not None,
                        decode_data=False)
controller.start()
print("READY", flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
try:
    while True:
        time.sleep(3600)
finally:
    controller.stop()
"#;

const CERT_PY: &str = r#"
import sys, datetime, ipaddress
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
cert_path, key_path = sys.argv[1:3]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
open(cert_path, "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(key_path, "wb").write(key.private_bytes(serialization.Encoding.PEM,
     serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;

/// Whether python3 with aiosmtpd is available.
pub fn available() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Makes a self-signed end-entity certificate for `localhost` and
/// `127.0.0.1` in `dir`: with Python's `cryptography` if installed, else
/// with the `openssl` CLI. None if neither works.
pub fn make_cert(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let script = dir.join("cert.py");
    std::fs::write(&script, CERT_PY).ok()?;
    let by_python = Command::new("python3")
        .arg(&script)
        .arg(&cert)
        .arg(&key)
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if by_python && cert.exists() {
        return Some((cert, key));
    }
    let by_openssl = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    (by_openssl && cert.exists()).then_some((cert, key))
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running aiosmtpd; killed on drop.
#[derive(Debug)]
pub struct SmtpServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Where messages land.
    pub maildir: PathBuf,
    /// The CA to trust (the server's own certificate), with STARTTLS.
    pub cert_pem: Option<Vec<u8>>,
    dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// Starts aiosmtpd (with STARTTLS required when `cert` is given).
    pub fn start(cert: Option<(PathBuf, PathBuf)>) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        std::fs::create_dir(&maildir).unwrap();
        let script = dir.path().join("server.py");
        std::fs::write(&script, SERVER_PY).unwrap();
        let port = free_port();
        let (cert_arg, key_arg) = match &cert {
            Some((c, k)) => (c.display().to_string(), k.display().to_string()),
            None => (String::new(), String::new()),
        };
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&maildir)
            .arg(cert_arg)
            .arg(key_arg)
            .arg(USER)
            .arg(PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "READY" {
                    let _ = tx.send(());
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(30)).is_ok();
        let cert_pem = cert.map(|(c, _)| std::fs::read(c).unwrap());
        let server = SmtpServer {
            child,
            port,
            maildir,
            cert_pem,
            dir,
        };
        assert!(ready, "aiosmtpd did not start on port {port}");
        server
    }

    /// The summaries of the messages received so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.maildir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// The raw `.eml` files received so far, in order.
    pub fn raw_messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.maildir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            .collect()
    }
}
