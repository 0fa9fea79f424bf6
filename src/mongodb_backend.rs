//! MongoDB, in connect-mongo 6's documents: `{ _id: sid, session, expires: Date[, lastModified]
//! [, createdAt, updatedAt] }`, `session` the serialised text (`stringify: true`) or that JSON as a
//! BSON document (`stringify: false`, dates tagged `{"$date": ms}` by JS). Expired documents are
//! never read, whatever the TTL monitor has swept; a touch never recreates a document.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::error::ErrorKind as MongoErrorKind;
use mongodb::event::{EventHandler, sdam::SdamEvent};
use mongodb::options::{Acknowledgment, ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};

use crate::backend::{Backend, Reply, Request, Stored};
use crate::defaults::Common;
use crate::error::{BackendError, BackendResult};

mod batch;

/// What a MongoDB store is built from (besides the settings every store shares).
pub struct MongoConfig {
  /// `mongodb://` or `mongodb+srv://`, with its options (TLS, auth, replica set, ...).
  pub url: String,
  pub db_name: Option<String>,
  pub collection_name: String,
  /// true: `session` holds the serialised text; false: that JSON as a BSON document.
  pub stringify: bool,
  pub auto_remove: AutoRemove,
  /// Write `lastModified` (connect-mongo's `touchAfter`), so connect-mongo reading these
  /// documents skips touches the same way.
  pub last_modified: bool,
  /// `createdAt` on insert and `updatedAt` on every write.
  pub timestamps: bool,
  /// connect-mongo's `writeOperationOptions`: `w` as a number or a tag, `j`, `wtimeout` (ms).
  pub write_nodes: Option<u32>,
  pub write_tag: Option<String>,
  pub write_journal: Option<bool>,
  pub write_timeout_ms: Option<u32>,
  pub pool_size: Option<u32>,
}

/// connect-mongo's `autoRemove`: who removes expired sessions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AutoRemove {
  /// A TTL index on `expires`: the server does.
  Native,
  /// The store deletes them on a timer (JS schedules it).
  Interval,
  /// Nobody.
  Disabled,
}

pub struct MongoBackend {
  options: MongoConfig,
  common: Common,
  /// Built on first use, inside the runtime (the driver spawns its monitors there, and a
  /// `mongodb+srv://` URL needs DNS lookups that must not run on the JS thread).
  client: tokio::sync::OnceCell<(Client, Collection<Document>)>,
  index_ready: tokio::sync::OnceCell<()>,
  closed: OnceLock<()>,
  /// The driver's view: no server can take writes now (it marked the server unknown after a
  /// network error or a failed heartbeat). Requests then wait out their timeout in the driver's
  /// retry and server selection rather than failing with a network error, so a timeout while
  /// this holds is an outage.
  no_server: Arc<AtomicBool>,
}

impl MongoBackend {
  pub fn new(options: MongoConfig, common: &Common) -> BackendResult<Self> {
    if !options.url.starts_with("mongodb://") && !options.url.starts_with("mongodb+srv://") {
      return Err(BackendError::invalid(
        "the URL must start with mongodb:// or mongodb+srv://",
      ));
    }
    if options.write_nodes == Some(0) && options.write_journal != Some(true) {
      return Err(BackendError::invalid(
        "writeOperationOptions w: 0 (unacknowledged writes) is not supported: a session write must be confirmed",
      ));
    }
    Ok(Self {
      options,
      client: tokio::sync::OnceCell::new(),
      index_ready: tokio::sync::OnceCell::new(),
      closed: OnceLock::new(),
      no_server: Arc::new(AtomicBool::new(false)),
      common: common.clone(),
    })
  }

  async fn collection(&self) -> BackendResult<&Collection<Document>> {
    if self.closed.get().is_some() {
      return Err(BackendError::closed());
    }
    let (_, collection) = self.client.get_or_try_init(|| self.connect()).await?;
    if self.options.auto_remove == AutoRemove::Native {
      self
        .index_ready
        .get_or_try_init(|| async {
          let index = IndexModel::builder()
            .keys(doc! { "expires": 1 })
            .options(IndexOptions::builder().expire_after(Duration::from_secs(0)).build())
            .build();
          match collection.create_index(index).await {
            Ok(_) => Ok(()),
            // An index on `expires` is there already, with other options (connect-mongo's, or
            // the app's own): the one there is kept, and sessions go on working.
            Err(e) if matches!(&*e.kind, MongoErrorKind::Command(c) if matches!(c.code, 85 | 86)) => Ok(()),
            Err(e) => Err(classify(&e)),
          }
        })
        .await?;
    }
    Ok(collection)
  }

  async fn connect(&self) -> BackendResult<(Client, Collection<Document>)> {
    let mut o = ClientOptions::parse(&self.options.url)
      .await
      .map_err(|e| match *e.kind {
        MongoErrorKind::DnsResolve { .. } => BackendError::unavailable(e.to_string()),
        _ => BackendError::invalid(format!("the connection URL is not usable: {e}")),
      })?;
    // A down server must be reported as one within the request's deadline, not after the
    // driver's 30 s of server selection.
    o.server_selection_timeout = Some((self.common.command_timeout * 2 / 3).max(Duration::from_millis(100)));
    o.connect_timeout = Some(self.common.connect_timeout.min(self.common.command_timeout));
    if let Some(n) = self.options.pool_size {
      o.max_pool_size = Some(n.max(1));
    }
    if let Some(idle) = self.common.idle_timeout {
      o.max_idle_time = Some(idle);
    }
    let no_server = self.no_server.clone();
    o.sdam_event_handler = Some(EventHandler::callback(move |event| {
      if let SdamEvent::TopologyDescriptionChanged(change) = event {
        no_server.store(!change.new_description.has_writable_server(), Ordering::Release);
      }
    }));
    if o.app_name.is_none() {
      o.app_name = Some("ferrosession".to_string());
    }
    let mut concern = o.write_concern.clone().unwrap_or_default();
    if let Some(n) = self.options.write_nodes {
      concern.w = Some(Acknowledgment::Nodes(n));
    }
    if let Some(tag) = &self.options.write_tag {
      concern.w = Some(if tag == "majority" {
        Acknowledgment::Majority
      } else {
        Acknowledgment::Custom(tag.clone())
      });
    }
    if let Some(j) = self.options.write_journal {
      concern.journal = Some(j);
    }
    if let Some(ms) = self.options.write_timeout_ms {
      concern.w_timeout = Some(Duration::from_millis(u64::from(ms)));
    }
    if concern.w.is_some() || concern.journal.is_some() || concern.w_timeout.is_some() {
      if matches!(concern.w, Some(Acknowledgment::Nodes(0))) && concern.journal != Some(true) {
        return Err(BackendError::invalid(
          "w=0 (unacknowledged writes) is not supported: a session write must be confirmed",
        ));
      }
      o.write_concern = Some(concern);
    }
    // connect-mongo's `client.db(dbName)`: the option, else the URL's database, else "test".
    let db_name = self
      .options
      .db_name
      .clone()
      .or_else(|| o.default_database.clone())
      .unwrap_or_else(|| "test".to_string());
    let client = Client::with_options(o).map_err(|e| classify(&e))?;
    let collection = client
      .database(&db_name)
      .collection::<Document>(&self.options.collection_name);
    Ok((client, collection))
  }

  fn value_of(&self, text: &str) -> BackendResult<Bson> {
    if self.options.stringify {
      return Ok(Bson::String(text.to_string()));
    }
    let json: serde_json::Value = serde_json::from_str(text)
      .map_err(|e| BackendError::invalid(format!("with stringify: false the session must be JSON: {e}")))?;
    Ok(to_bson(json))
  }

  /// The stored `session` as the text JS parses: a string as it is, a document as JSON.
  fn text_of(&self, session: Option<&Bson>) -> BackendResult<Option<String>> {
    match session {
      None | Some(Bson::Null) => Ok(None),
      Some(Bson::String(s)) => Ok(Some(s.clone())),
      Some(document @ Bson::Document(_)) => {
        let json = from_bson(document)?;
        serde_json::to_string(&json)
          .map(Some)
          .map_err(|e| BackendError::unparsable(format!("the stored session cannot be written as JSON: {e}")))
      }
      Some(other) => Err(BackendError::unparsable(format!(
        "the stored session is a BSON {:?}, not a string or a document",
        other.element_type()
      ))),
    }
  }

  /// Not expired at `now_ms`: no `expires`, or one after now. One condition on one field where
  /// connect-mongo writes an `$or` of `$exists: false` and `$gt` (SecantusDB answered that `$or`
  /// 5-10x slower, touch above all). Unlike the `$or`, it also keeps a document whose `expires`
  /// is not a date, as the server's TTL index does (it never removes one).
  fn live(now_ms: f64) -> Document {
    doc! { "expires": { "$not": { "$lte": date(now_ms) } } }
  }

  /// The document of `sid`, if it is live. `_id` comes first, as in connect-mongo's queries: a
  /// server that plans by the first indexed field (SecantusDB does) then looks the document up
  /// by its id instead of walking every live session (10x slower touches there).
  fn live_one(sid: &str, now_ms: f64) -> Document {
    let mut filter = doc! { "_id": sid };
    filter.extend(Self::live(now_ms));
    filter
  }

  /// A found document as the session JS parses, with the expiry the store holds.
  fn stored_of(&self, document: &Document) -> BackendResult<Option<Stored>> {
    let Some(value) = self.text_of(document.get("session"))? else {
      return Ok(None);
    };
    let expires_at_ms = document
      .get_datetime("expires")
      .ok()
      .map(|d| d.timestamp_millis() as f64);
    Ok(Some(Stored { value, expires_at_ms }))
  }

  /// The upsert of a whole session (`set_update`); whether it created the document.
  async fn upsert(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<bool> {
    let update = self.set_update(sid, value, expires_at_ms, now_ms)?;
    let collection = self.collection().await?;
    collection
      .update_one(doc! { "_id": sid }, update)
      .upsert(true)
      .await
      .map(|result| result.upserted_id.is_some())
      .map_err(|e| classify(&e))
  }

  /// connect-mongo's upsert of a whole session (`lastModified` with touchAfter, `createdAt` /
  /// `updatedAt` with timestamps).
  fn set_update(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<Document> {
    let session = self.value_of(value)?;
    let at = expires_at_ms
      .ok_or_else(|| BackendError::invalid("MongoDB sessions always expire; disableTTL is not supported"))?;
    let mut fields = doc! { "_id": sid, "session": session, "expires": date(at) };
    if self.options.last_modified {
      fields.insert("lastModified", date(now_ms));
    }
    let mut update = doc! { "$set": fields };
    if self.options.timestamps {
      update.insert("$setOnInsert", doc! { "createdAt": date(now_ms) });
      update.insert("$currentDate", doc! { "updatedAt": true });
    }
    Ok(update)
  }

  fn touch_update(&self, at: f64, now_ms: f64) -> Document {
    let mut fields = doc! { "expires": date(at) };
    if self.options.last_modified {
      fields.insert("lastModified", date(now_ms));
    }
    let mut update = doc! { "$set": fields };
    if self.options.timestamps {
      update.insert("$currentDate", doc! { "updatedAt": true });
    }
    update
  }

  /// Every live document (only its `_id` with `ids_only`).
  async fn live_documents(&self, now_ms: f64, ids_only: bool) -> BackendResult<Vec<Document>> {
    let collection = self.collection().await?;
    let mut find = collection.find(Self::live(now_ms));
    if ids_only {
      find = find.projection(doc! { "_id": 1 });
    }
    find
      .await
      .map_err(|e| classify(&e))?
      .try_collect()
      .await
      .map_err(|e| classify(&e))
  }
}

fn date(ms: f64) -> DateTime {
  DateTime::from_millis(ms as i64)
}

/// JSON (as JS wrote it for `stringify: false`) to BSON as the Node driver would store the same
/// object: integers that fit in 32 bits as Int32, other numbers as Double, `{"$date": ms}` as a
/// Date, object key order kept.
fn to_bson(value: serde_json::Value) -> Bson {
  use serde_json::Value;
  match value {
    Value::Null => Bson::Null,
    Value::Bool(b) => Bson::Boolean(b),
    Value::String(s) => Bson::String(s),
    Value::Array(items) => Bson::Array(items.into_iter().map(to_bson).collect()),
    Value::Number(n) => {
      let f = n.as_f64().unwrap_or(f64::NAN);
      let int32 =
        f.fract() == 0.0 && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX) && !(f == 0.0 && f.is_sign_negative());
      if int32 { Bson::Int32(f as i32) } else { Bson::Double(f) }
    }
    Value::Object(map) => {
      if map.len() == 1
        && let Some(ms) = map.get("$date").and_then(serde_json::Value::as_f64)
      {
        return Bson::DateTime(DateTime::from_millis(ms as i64));
      }
      Bson::Document(map.into_iter().map(|(k, v)| (k, to_bson(v))).collect())
    }
  }
}

/// BSON back to the JSON JS revives: dates as `{"$date": ms}`; a type JSON has no form for makes
/// the session unreadable (treated as absent and reported) rather than silently changed.
fn from_bson(value: &Bson) -> BackendResult<serde_json::Value> {
  use serde_json::Value;
  Ok(match value {
    Bson::Null | Bson::Undefined => Value::Null,
    Bson::Boolean(b) => Value::Bool(*b),
    Bson::String(s) => Value::String(s.clone()),
    Bson::Int32(i) => Value::from(*i),
    Bson::Int64(i) => Value::from(*i),
    Bson::Double(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
    Bson::DateTime(d) => serde_json::json!({ "$date": d.timestamp_millis() }),
    Bson::Array(items) => Value::Array(items.iter().map(from_bson).collect::<BackendResult<_>>()?),
    Bson::Document(d) => Value::Object(
      d.iter()
        .map(|(k, v)| Ok((k.clone(), from_bson(v)?)))
        .collect::<BackendResult<_>>()?,
    ),
    Bson::ObjectId(id) => Value::String(id.to_hex()),
    other => {
      return Err(BackendError::unparsable(format!(
        "the stored session holds a BSON {:?}, which JSON cannot carry",
        other.element_type()
      )));
    }
  })
}

/// Only a server that cannot be reached is an outage; whatever the server answered fails that
/// request with the server's own words.
fn classify(e: &mongodb::error::Error) -> BackendError {
  match &*e.kind {
    MongoErrorKind::ServerSelection { message, .. } => {
      BackendError::unavailable(format!("no server is reachable: {message}"))
    }
    MongoErrorKind::Io(io) => BackendError::unavailable(io.to_string()),
    MongoErrorKind::ConnectionPoolCleared { message, .. } | MongoErrorKind::DnsResolve { message, .. } => {
      BackendError::unavailable(message.clone())
    }
    // shutting down, not primary, recovering: the server is going away (a failover)
    MongoErrorKind::Command(c) if matches!(c.code, 91 | 11600 | 10107 | 13435 | 10058 | 189 | 11602 | 13436) => {
      BackendError::unavailable(format!("{} ({} {})", c.message, c.code_name, c.code))
    }
    MongoErrorKind::Command(c) => BackendError::backend(format!("{} ({} {})", c.message, c.code_name, c.code)),
    MongoErrorKind::InvalidArgument { message, .. } | MongoErrorKind::InvalidTlsConfig { message, .. } => {
      BackendError::invalid(message.clone())
    }
    MongoErrorKind::Shutdown => BackendError::closed(),
    _ => BackendError::backend(e.to_string()),
  }
}

#[async_trait]
impl Backend for MongoBackend {
  fn name(&self) -> &'static str {
    "mongodb"
  }

  async fn get(&self, sid: &str, now_ms: f64) -> BackendResult<Option<Stored>> {
    let collection = self.collection().await?;
    let found = collection
      .find_one(Self::live_one(sid, now_ms))
      .await
      .map_err(|e| classify(&e))?;
    match found {
      Some(document) => self.stored_of(&document),
      None => Ok(None),
    }
  }

  async fn set(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    self.upsert(sid, value, expires_at_ms, now_ms).await.map(drop)
  }

  /// A merged save's conditional write: the document is updated only while `session` is still
  /// the text the merge read. Not with `stringify: false`, whose documents would have to match
  /// field for field and type for type after a round trip through JSON: written plainly there.
  async fn set_if_unchanged(
    &self,
    sid: &str,
    expected: &str,
    value: &str,
    expires_at_ms: Option<f64>,
    now_ms: f64,
  ) -> Option<BackendResult<bool>> {
    if !self.options.stringify {
      return None;
    }
    let written = async {
      let update = self.set_update(sid, value, expires_at_ms, now_ms)?;
      let collection = self.collection().await?;
      let matched = collection
        .update_one(doc! { "_id": sid, "session": expected }, update)
        .await
        .map_err(|e| classify(&e))?
        .matched_count
        == 1;
      if matched {
        return Ok(true);
      }
      // A session stored as a BSON document (written with `stringify: false`) never equals the
      // text it reads as: it is replaced by text, as a plain write would, instead of being tried
      // again until the attempts run out.
      let stored = collection
        .find_one(doc! { "_id": sid })
        .await
        .map_err(|e| classify(&e))?;
      if stored.is_some_and(|d| matches!(d.get("session"), Some(Bson::Document(_)))) {
        self.upsert(sid, value, expires_at_ms, now_ms).await?;
        return Ok(true);
      }
      Ok(false)
    };
    Some(written.await)
  }

  /// A set on its own, telling whether it created the document (connect-mongo's `create` event).
  async fn run_one(&self, request: &Request) -> BackendResult<Reply> {
    match request {
      Request::Set {
        sid,
        value,
        expires_at_ms,
        now_ms,
      } => {
        let created = self.upsert(sid, value, *expires_at_ms, *now_ms).await?;
        Ok(Reply::Wrote { created })
      }
      other => crate::backend::run_one_plainly(self, other).await,
    }
  }

  /// Moves `expires` of a document that is still live (one that expired or was removed stays
  /// gone, and that is not an error: connect-mongo's "Unable to find the session to touch").
  async fn touch(&self, sid: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    let Some(at) = expires_at_ms else { return Ok(()) };
    let collection = self.collection().await?;
    collection
      .update_one(Self::live_one(sid, now_ms), self.touch_update(at, now_ms))
      .await
      .map(drop)
      .map_err(|e| classify(&e))
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    let collection = self.collection().await?;
    collection
      .delete_one(doc! { "_id": sid })
      .await
      .map(drop)
      .map_err(|e| classify(&e))
  }

  async fn ids(&self, now_ms: f64) -> BackendResult<Vec<String>> {
    let documents = self.live_documents(now_ms, true).await?;
    Ok(
      documents
        .iter()
        .filter_map(|d| d.get_str("_id").ok().map(str::to_string))
        .collect(),
    )
  }

  async fn all(&self, now_ms: f64) -> BackendResult<Vec<(String, Option<String>)>> {
    let documents = self.live_documents(now_ms, false).await?;
    Ok(
      documents
        .iter()
        .filter_map(|d| {
          let id = d.get_str("_id").ok()?.to_string();
          Some((id, self.text_of(d.get("session")).ok().flatten()))
        })
        .collect(),
    )
  }

  async fn length(&self, now_ms: f64) -> BackendResult<u64> {
    let collection = self.collection().await?;
    collection
      .count_documents(Self::live(now_ms))
      .await
      .map_err(|e| classify(&e))
  }

  async fn clear(&self) -> BackendResult<u64> {
    let collection = self.collection().await?;
    match collection.delete_many(doc! {}).await {
      Ok(r) => Ok(r.deleted_count),
      // connect-mongo: a collection that does not exist yet is already clear.
      Err(e) if matches!(&*e.kind, MongoErrorKind::Command(c) if c.code == 26) => Ok(0),
      Err(e) => Err(classify(&e)),
    }
  }

  /// `autoRemove: 'interval'` (and explicit prunes): deletes expired documents, acknowledged
  /// (connect-mongo sends this one with w: 0, which the driver refuses).
  async fn prune(&self, now_ms: f64) -> BackendResult<Option<u64>> {
    let collection = self.collection().await?;
    collection
      .delete_many(doc! { "expires": { "$lt": date(now_ms) } })
      .await
      .map(|r| Some(r.deleted_count))
      .map_err(|e| classify(&e))
  }

  fn server_unreachable(&self) -> bool {
    self.no_server.load(Ordering::Acquire)
  }

  async fn ping(&self) -> BackendResult<()> {
    let (client, _) = self.client.get_or_try_init(|| self.connect()).await?;
    let admin = client.database("admin");
    let attempt = admin.run_command(doc! { "ping": 1 });
    match tokio::time::timeout(self.common.connect_timeout, attempt).await {
      Ok(result) => result.map(drop).map_err(|e| classify(&e)),
      Err(_) => Err(BackendError::unavailable(format!(
        "no answer within {} ms (connectTimeout)",
        self.common.connect_timeout.as_millis()
      ))),
    }
  }

  /// A wave's requests as one command per kind (`batch.rs`).
  async fn run_batch(&self, requests: &[Request]) -> Option<Vec<BackendResult<Reply>>> {
    crate::batch_kinds::run(self, requests).await
  }

  async fn close(&self) {
    let _ = self.closed.set(());
    if let Some((client, _)) = self.client.get() {
      // A graceful shutdown waits for the driver's pending operations; close() must still answer
      // within commandTimeout, so after a bounded wait the rest are dropped.
      let patience = self.common.connect_timeout.min(self.common.command_timeout / 2);
      if tokio::time::timeout(patience, client.clone().shutdown()).await.is_err() {
        client.clone().shutdown().immediate(true).await;
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn json_becomes_bson_as_the_node_driver_stores_it() {
    let json: serde_json::Value = serde_json::from_str(
      r#"{"cookie":{"originalMaxAge":60000,"expires":{"$date":1704164645678},"secure":null},"n":1.5,"big":4294967296,"neg0":-0.0,"list":[1,"a"]}"#,
    )
    .unwrap_or_default();
    let Bson::Document(d) = to_bson(json) else {
      panic!("not a document")
    };
    let keys: Vec<&str> = d.keys().map(String::as_str).collect();
    assert_eq!(keys, ["cookie", "n", "big", "neg0", "list"]);
    let cookie = d.get_document("cookie").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cookie.get("originalMaxAge"), Some(&Bson::Int32(60000)));
    assert_eq!(
      cookie.get("expires"),
      Some(&Bson::DateTime(DateTime::from_millis(1_704_164_645_678)))
    );
    assert_eq!(cookie.get("secure"), Some(&Bson::Null));
    assert_eq!(d.get("n"), Some(&Bson::Double(1.5)));
    assert_eq!(d.get("big"), Some(&Bson::Double(4_294_967_296.0)));
    assert!(matches!(d.get("neg0"), Some(Bson::Double(f)) if f.is_sign_negative()));
  }

  #[test]
  fn bson_comes_back_as_json_with_dates_tagged() {
    let back = from_bson(&Bson::Document(
      doc! { "when": DateTime::from_millis(5), "i": 7_i64, "d": 2.5 },
    ))
    .map(|v| v.to_string())
    .unwrap_or_default();
    assert_eq!(back, r#"{"when":{"$date":5},"i":7,"d":2.5}"#);
    assert!(from_bson(&Bson::Decimal128(mongodb::bson::Decimal128::from_bytes([0; 16]))).is_err());
  }
}
