//! The requests JS issued in one turn, in as few commands as MongoDB allows: the sets as one
//! `update` command with a statement each (the same upserts as one by one), the touches likewise,
//! the gets as one `find` with `$in`. A burst of 1,000 sets is then a few round trips instead of
//! a thousand requests queueing for the pool's connections.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};

use super::{MongoBackend, classify};
use crate::backend::{Backend, Reply, Request, Stored};
use crate::error::{BackendError, BackendResult};

/// MongoDB takes up to 100,000 statements and 16 MiB per command; stay well inside both.
const MAX_STATEMENTS: usize = 10_000;
const MAX_COMMAND_BYTES: usize = 8 * 1024 * 1024;

/// One statement of an `update` command, with the index of its request in the batch.
struct Statement {
  at: usize,
  body: Document,
  bytes: usize,
}

impl MongoBackend {
  pub(super) async fn batch(&self, requests: &[Request]) -> Option<Vec<BackendResult<Reply>>> {
    // A sid written more than once in one turn (set, touch or destroy) goes on its own after
    // the batch, in order: one unordered command may apply its statements in any order, and the
    // later write must win.
    let mut writes: HashMap<&str, usize> = HashMap::new();
    for request in requests {
      if !matches!(request, Request::Get { .. }) {
        *writes.entry(request.sid()).or_default() += 1;
      }
    }
    let once = |sid: &str| writes.get(sid) == Some(&1);
    let mut sets = Vec::new();
    let mut touches = Vec::new();
    let mut gets = Vec::new();
    for (at, request) in requests.iter().enumerate() {
      match request {
        Request::Set {
          sid,
          value,
          expires_at_ms,
          now_ms,
        } if once(sid) => {
          // Bad input fails its own request (below, one by one), never the batch.
          if let Ok(update) = self.set_update(sid, value, *expires_at_ms, *now_ms) {
            // With stringify: false the session is BSON, up to ~5x its JSON (small numbers).
            let bytes = value.len() * if self.options.stringify { 1 } else { 5 } + sid.len() + 128;
            sets.push(Statement {
              at,
              body: doc! { "q": { "_id": sid.as_str() }, "u": update, "upsert": true },
              bytes,
            });
          }
        }
        Request::Touch {
          sid,
          expires_at_ms: Some(expires),
          now_ms,
        } if once(sid) => touches.push(Statement {
          at,
          body: doc! { "q": Self::live_one(sid, *now_ms), "u": self.touch_update(*expires, *now_ms) },
          bytes: sid.len() + 256,
        }),
        _ => {}
      }
    }
    // One statement is no better as a command of its own: it goes one by one.
    if sets.len() < 2 {
      sets.clear();
    }
    if touches.len() < 2 {
      touches.clear();
    }
    // A get joins the one find only when every write of its sid (if any) went into the
    // commands above, which run first: otherwise it waits its turn among that sid's writes.
    let batched: HashSet<&str> = sets.iter().chain(&touches).map(|s| requests[s.at].sid()).collect();
    for (at, request) in requests.iter().enumerate() {
      if let Request::Get { sid, now_ms } = request
        && writes.get(sid.as_str()).is_none_or(|_| batched.contains(sid.as_str()))
      {
        gets.push((at, sid.as_str(), *now_ms));
      }
    }
    if gets.len() < 2 {
      gets.clear();
    }
    if sets.is_empty() && touches.is_empty() && gets.is_empty() {
      return None;
    }
    let mut results: Vec<Option<BackendResult<Reply>>> = requests.iter().map(|_| None).collect();
    // The sets first: a get later in the same turn reads what was written before it.
    for (at, result) in self.update_all(sets).await {
      results[at] = Some(result.map(|created| Reply::Wrote { created }));
    }
    // Then the touches, then the gets: a get reads what the turn wrote before it.
    for (at, result) in self.update_all(touches).await {
      results[at] = Some(result.map(|_| Reply::Done));
    }
    for ((at, _, _), result) in gets.iter().zip(self.get_all(&gets).await) {
      results[*at] = Some(result.map(Reply::Got));
    }
    // Whatever is left (destroys, duplicates, bad input, a lone get or touch): one by one, in
    // the order JS made them for any one sid (so the last write wins), different sids at once.
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    let mut by_sid: Vec<Vec<usize>> = Vec::new();
    for (at, request) in requests.iter().enumerate() {
      if results[at].is_some() {
        continue;
      }
      let group = *group_of.entry(request.sid()).or_insert_with(|| {
        by_sid.push(Vec::new());
        by_sid.len() - 1
      });
      by_sid[group].push(at);
    }
    let groups = by_sid.into_iter().map(|ats| async move {
      let mut answered = Vec::with_capacity(ats.len());
      for at in ats {
        answered.push((at, self.run_one(&requests[at]).await));
      }
      answered
    });
    for (at, result) in futures_util::future::join_all(groups).await.into_iter().flatten() {
      results[at] = Some(result);
    }
    Some(
      results
        .into_iter()
        .map(|done| done.unwrap_or_else(|| Err(BackendError::backend("request lost in the batch"))))
        .collect(),
    )
  }

  /// The statements as `update` commands (as many as the size limits need), each request's own
  /// write error reported to it alone.
  /// Each statement's outcome: whether it inserted the document (an upsert that created it).
  async fn update_all(&self, statements: Vec<Statement>) -> Vec<(usize, BackendResult<bool>)> {
    let mut out = Vec::with_capacity(statements.len());
    let mut chunk: Vec<Statement> = Vec::new();
    let mut bytes = 0;
    let mut statements = statements.into_iter().peekable();
    while let Some(statement) = statements.next() {
      bytes += statement.bytes;
      chunk.push(statement);
      let full = statements
        .peek()
        .is_none_or(|next| chunk.len() >= MAX_STATEMENTS || bytes + next.bytes > MAX_COMMAND_BYTES);
      if full {
        out.extend(self.update_command(std::mem::take(&mut chunk)).await);
        bytes = 0;
      }
    }
    out
  }

  async fn update_command(&self, mut chunk: Vec<Statement>) -> Vec<(usize, BackendResult<bool>)> {
    let outcome = async {
      let collection = self.collection().await?;
      let (client, _) = self.client.get().ok_or_else(BackendError::closed)?;
      // The statements move into the command (each holds a whole session): no copy of them.
      let updates: Vec<Bson> = chunk
        .iter_mut()
        .map(|s| Bson::Document(std::mem::take(&mut s.body)))
        .collect();
      let mut command = doc! { "update": collection.name(), "updates": updates, "ordered": false };
      if let Some(concern) = collection.write_concern() {
        let concern = mongodb::bson::serialize_to_document(concern)
          .map_err(|e| BackendError::invalid(format!("the write concern cannot be sent: {e}")))?;
        command.insert("writeConcern", concern);
      }
      // Serialised once (run_command would do it on each call); the retry sends the same bytes.
      let command = RawDocumentBuf::try_from(&command)
        .map_err(|e| BackendError::invalid(format!("the sessions cannot be sent as BSON: {e}")))?;
      let database = client.database(&collection.namespace().db);
      // The driver retries update_one across a replica-set failover (retryWrites) but not
      // run_command: retry once here, which is safe because every statement is idempotent.
      match database.run_raw_command(command.clone()).await {
        Err(e) if is_failover(&e) => database.run_raw_command(command).await,
        other => other,
      }
      .map_err(|e| classify(&e))
    }
    .await;
    let reply = match outcome {
      Ok(reply) => reply,
      Err(e) => return chunk.iter().map(|s| (s.at, Err(e.clone()))).collect(),
    };
    // An unmet write concern leaves every statement unconfirmed.
    if let Ok(concern) = reply.get_document("writeConcernError") {
      let e = BackendError::backend(format!(
        "write concern not met: {}",
        concern.get_str("errmsg").unwrap_or("")
      ));
      return chunk.iter().map(|s| (s.at, Err(e.clone()))).collect();
    }
    let mut failed = HashMap::new();
    if let Ok(errors) = reply.get_array("writeErrors") {
      for error in errors.iter().filter_map(Bson::as_document) {
        let index = error.get_i32("index").ok().and_then(|i| usize::try_from(i).ok());
        if let Some(index) = index {
          let code = error.get_i32("code").unwrap_or(0);
          let message = error.get_str("errmsg").unwrap_or("write error");
          failed.insert(index, BackendError::backend(format!("{message} (code {code})")));
        }
      }
    }
    // `upserted` lists the statements (by index) that inserted their document.
    let inserted: HashSet<usize> = reply
      .get_array("upserted")
      .map(|upserted| {
        upserted
          .iter()
          .filter_map(Bson::as_document)
          .filter_map(|u| u.get_i32("index").ok().and_then(|i| usize::try_from(i).ok()))
          .collect()
      })
      .unwrap_or_default();
    chunk
      .iter()
      .enumerate()
      .map(|(i, s)| (s.at, failed.remove(&i).map_or(Ok(inserted.contains(&i)), Err)))
      .collect()
  }

  /// The live documents of the gets' sids in one `find`; each get then applies its own clock.
  async fn get_all(&self, gets: &[(usize, &str, f64)]) -> Vec<BackendResult<Option<Stored>>> {
    if gets.is_empty() {
      return Vec::new();
    }
    let earliest = gets.iter().map(|g| g.2).fold(f64::INFINITY, f64::min);
    let found = async {
      let collection = self.collection().await?;
      let sids: Vec<&str> = gets.iter().map(|g| g.1).collect();
      let mut filter = doc! { "_id": { "$in": sids } };
      filter.extend(Self::live(earliest));
      collection
        .find(filter)
        .await
        .map_err(|e| classify(&e))?
        .try_collect::<Vec<Document>>()
        .await
        .map_err(|e| classify(&e))
    }
    .await;
    let documents = match found {
      Ok(documents) => documents,
      Err(e) => return gets.iter().map(|_| Err(e.clone())).collect(),
    };
    let by_sid: HashMap<&str, &Document> = documents
      .iter()
      .filter_map(|d| d.get_str("_id").ok().map(|id| (id, d)))
      .collect();
    gets
      .iter()
      .map(|(_, sid, now_ms)| match by_sid.get(sid) {
        Some(document) if Self::is_live(document, *now_ms) => self.stored_of(document),
        _ => Ok(None),
      })
      .collect()
  }

  /// The live filter applied to one document already fetched (for a clock later than the
  /// one the find used).
  fn is_live(document: &Document, now_ms: f64) -> bool {
    match document.get("expires") {
      None => true,
      Some(Bson::DateTime(at)) => (at.timestamp_millis() as f64) > now_ms,
      Some(_) => false,
    }
  }
}

/// The primary stepped down or is shutting down (the codes the driver's retryable writes retry
/// on): another member takes over within seconds.
fn is_failover(e: &mongodb::error::Error) -> bool {
  e.contains_label("RetryableWriteError")
    || matches!(&*e.kind, mongodb::error::ErrorKind::Command(c) if matches!(c.code, 91 | 189 | 10107 | 11600 | 11602 | 13435 | 13436))
}
