//! rustls client configurations, built once per store from what the user asked for: which roots to
//! trust, how much of the server's certificate to check, and an optional client certificate.
//! Never a silent downgrade: a store asked for TLS connects with TLS or fails saying why.

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{BackendError, BackendResult};

/// How much of the server's certificate is checked (libpq's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
  /// Encrypted, certificate not checked (libpq `require` without a root certificate, node-pg
  /// `rejectUnauthorized: false`, `sslmode=no-verify`).
  Nothing,
  /// The chain must lead to a trusted root; the name is not checked (`verify-ca`).
  Chain,
  /// Chain and host name (`verify-full`, node-pg `ssl: true`).
  Full,
}

/// A TLS request as JS (or a connection string) spelled it; PEM text, not file names.
#[derive(Clone, Default, Debug)]
pub struct TlsSettings {
  /// `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
  pub mode: String,
  /// PEM roots to trust instead of the system's.
  pub ca: Option<String>,
  /// PEM client certificate chain (leaf first) and its unencrypted key.
  pub cert: Option<String>,
  pub key: Option<String>,
  /// The name to check the certificate against instead of the host.
  pub servername: Option<String>,
}

fn provider() -> Arc<CryptoProvider> {
  Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's roots (honours SSL_CERT_FILE / SSL_CERT_DIR), loaded once: it is slow.
fn system_roots() -> &'static RootCertStore {
  static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
  ROOTS.get_or_init(|| {
    let mut roots = RootCertStore::empty();
    let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
  })
}

fn roots(ca: Option<&str>) -> BackendResult<RootCertStore> {
  let Some(pem) = ca else {
    return Ok(system_roots().clone());
  };
  let mut roots = RootCertStore::empty();
  for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
    let cert = cert.map_err(|e| BackendError::invalid(format!("TLS: the CA is not PEM certificates: {e}")))?;
    roots
      .add(cert)
      .map_err(|e| BackendError::invalid(format!("TLS: a CA certificate was refused: {e}")))?;
  }
  if roots.is_empty() {
    return Err(BackendError::invalid("TLS: the CA holds no PEM certificate"));
  }
  Ok(roots)
}

/// A client configuration for `verify` with `settings`' roots and client certificate.
pub fn client_config(verify: Verify, settings: &TlsSettings) -> BackendResult<ClientConfig> {
  let p = provider();
  let builder = ClientConfig::builder_with_provider(p.clone())
    .with_safe_default_protocol_versions()
    .map_err(|e| BackendError::invalid(format!("TLS: {e}")))?;
  let builder = match verify {
    Verify::Nothing => builder
      .dangerous()
      .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(p))),
    Verify::Chain | Verify::Full => {
      let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(settings.ca.as_deref())?), p)
        .build()
        .map_err(|e| BackendError::invalid(format!("TLS: cannot check certificates: {e}")))?;
      if verify == Verify::Chain {
        builder
          .dangerous()
          .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
      } else {
        builder.with_webpki_verifier(webpki)
      }
    }
  };
  match (&settings.cert, &settings.key) {
    (Some(cert), Some(key)) => {
      let (chain, key) = client_identity(cert, key)?;
      builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| BackendError::invalid(format!("TLS client certificate: {e}")))
    }
    (Some(_), None) => Err(BackendError::invalid(
      "TLS: a client certificate was given without its key",
    )),
    (None, Some(_)) => Err(BackendError::invalid(
      "TLS: a client key was given without its certificate",
    )),
    (None, None) => Ok(builder.with_no_client_auth()),
  }
}

/// A PEM certificate chain and its key, as rustls takes them. Encrypted keys are refused (rustls
/// cannot decrypt them): a setting that cannot be honoured is an error, never ignored.
pub fn client_identity(cert: &str, key: &str) -> BackendResult<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
  let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| BackendError::invalid(format!("TLS client certificate is not PEM: {e}")))?;
  if chain.is_empty() {
    return Err(BackendError::invalid("TLS client certificate holds no PEM certificate"));
  }
  if key.contains("ENCRYPTED PRIVATE KEY") || key.contains("Proc-Type: 4,ENCRYPTED") {
    return Err(BackendError::invalid(
      "TLS client key is encrypted; give it decrypted (a passphrase is not supported)",
    ));
  }
  let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
    .map_err(|e| BackendError::invalid(format!("TLS client key is not a PEM private key: {e}")))?;
  Ok((chain, key))
}

/// `verify-ca`: the chain must be trusted, the name may be anything. webpki checks the chain
/// before the name, so a name error means the chain was accepted.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
  fn verify_server_cert(
    &self,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    name: &ServerName<'_>,
    ocsp: &[u8],
    now: UnixTime,
  ) -> Result<ServerCertVerified, rustls::Error> {
    match self.0.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
      Err(rustls::Error::InvalidCertificate(
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
      )) => Ok(ServerCertVerified::assertion()),
      other => other,
    }
  }
  fn verify_tls12_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> Result<HandshakeSignatureValid, rustls::Error> {
    self.0.verify_tls12_signature(message, cert, dss)
  }
  fn verify_tls13_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> Result<HandshakeSignatureValid, rustls::Error> {
    self.0.verify_tls13_signature(message, cert, dss)
  }
  fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
    self.0.supported_verify_schemes()
  }
}

/// Encrypted but unchecked (asked for explicitly). The handshake signatures are still verified:
/// the server must hold the key of the certificate it presents.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
  fn verify_server_cert(
    &self,
    _end_entity: &CertificateDer<'_>,
    _intermediates: &[CertificateDer<'_>],
    _name: &ServerName<'_>,
    _ocsp: &[u8],
    _now: UnixTime,
  ) -> Result<ServerCertVerified, rustls::Error> {
    Ok(ServerCertVerified::assertion())
  }
  fn verify_tls12_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
  }
  fn verify_tls13_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
  }
  fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
    self.0.signature_verification_algorithms.supported_schemes()
  }
}

/// A TLS failure in the user's terms: what was asked for and why it could not be had.
pub fn explain(detail: &str) -> String {
  let why = if detail.contains("UnknownIssuer") || detail.contains("unknown issuer") {
    "the server's certificate is not signed by a trusted CA (give the CA: ssl.ca / sslrootcert)"
  } else if detail.contains("NotValidForName") || detail.contains("not valid for name") {
    "the server's certificate does not name this host (use the name it was issued for, or verify-ca)"
  } else if detail.contains("does not support TLS") || detail.contains("server does not support") {
    "the server does not offer TLS"
  } else if detail.contains("Expired") {
    "the server's certificate has expired"
  } else if detail.contains("CertificateRequired") || detail.contains("certificate required") {
    "the server requires a client certificate (ssl.cert and ssl.key / sslcert and sslkey)"
  } else {
    "the TLS handshake failed"
  };
  format!("TLS was requested and could not be established: {why} ({detail})")
}
