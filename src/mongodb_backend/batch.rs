//! A wave of requests in as few commands as MongoDB allows (`batch_kinds` plans it and answers
//! each request): the sets as one `update` command with a statement each (the same upserts as
//! one by one), the touches likewise, the gets as one `find` with `$in`, the destroys as one
//! `delete`. A burst of 1,000 sets is then a few round trips instead of a thousand requests
//! queueing for the pool's connections.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};

use super::{MongoBackend, classify};
use crate::backend::Reply;
use crate::batch_kinds::{self, Answers, ByKind, Destroy, Get, Group, Set, Touch};
use crate::error::{BackendError, BackendResult};

/// MongoDB takes up to 100,000 statements and 16 MiB per command; stay well inside both.
const MAX_STATEMENTS: usize = 10_000;
const MAX_COMMAND_BYTES: usize = 8 * 1024 * 1024;

/// One statement of an `update` command, with the index of its request in its group.
struct Statement {
  at: usize,
  body: Document,
  bytes: usize,
}

/// Input a set cannot store fails that set alone, as it would on its own (`set_many`).
#[async_trait]
impl ByKind for MongoBackend {
  /// The live documents of the gets' sids in one `find`; each get then applies its own clock.
  async fn get_many(&self, gets: &Group<Get<'_>>) -> Answers {
    let collection = self.collection().await?;
    let mut filter = doc! { "_id": { "$in": gets.sids() } };
    filter.extend(Self::live(gets.earliest_ms));
    let documents: Vec<Document> = collection
      .find(filter)
      .await
      .map_err(|e| classify(&e))?
      .try_collect()
      .await
      .map_err(|e| classify(&e))?;
    let by_sid: HashMap<&str, &Document> = documents
      .iter()
      .filter_map(|d| d.get_str("_id").ok().map(|id| (id, d)))
      .collect();
    let answer = |get: &Get| match by_sid.get(get.sid) {
      Some(document) if Self::is_live(document, get.now_ms) => self.stored_of(document).map(Reply::Got),
      _ => Ok(Reply::Got(None)),
    };
    Ok(gets.items.iter().map(answer).collect())
  }

  /// The sets as upserts of one `update` command; each answers whether it created the session.
  async fn set_many(&self, sets: &Group<Set<'_>>) -> Answers {
    let mut answers: Vec<BackendResult<Reply>> = Vec::with_capacity(sets.items.len());
    let mut statements = Vec::with_capacity(sets.items.len());
    for (at, set) in sets.items.iter().enumerate() {
      match self.set_update(set.sid, set.value, Some(set.expires_at_ms), set.now_ms) {
        Ok(update) => {
          // With stringify: false the session is BSON, up to ~5x its JSON (small numbers).
          let bytes = set.value.len() * if self.options.stringify { 1 } else { 5 } + set.sid.len() + 128;
          statements.push(Statement {
            at,
            body: doc! { "q": { "_id": set.sid }, "u": update, "upsert": true },
            bytes,
          });
          answers.push(Err(batch_kinds::unanswered()));
        }
        Err(e) => answers.push(Err(e)), // bad input fails its own request, never the batch
      }
    }
    for (at, result) in self.update_all(statements).await {
      if let Some(slot) = answers.get_mut(at) {
        *slot = result.map(|created| Reply::Wrote { created });
      }
    }
    Ok(answers)
  }

  /// The touches as updates of one `update` command, each of its session only while it is live.
  async fn touch_many(&self, touches: &Group<Touch<'_>>) -> Answers {
    let statements = touches.items.iter().enumerate().map(|(at, t)| Statement {
      at,
      body: doc! { "q": Self::live_one(t.sid, t.now_ms), "u": self.touch_update(t.expires_at_ms, t.now_ms) },
      bytes: t.sid.len() + 256,
    });
    let mut answers: Vec<BackendResult<Reply>> = touches.at.iter().map(|_| Err(batch_kinds::unanswered())).collect();
    for (at, result) in self.update_all(statements.collect()).await {
      if let Some(slot) = answers.get_mut(at) {
        *slot = result.map(|_| Reply::Done);
      }
    }
    Ok(answers)
  }

  /// The destroys as one `delete` of their ids.
  async fn destroy_many(&self, destroys: &Group<Destroy<'_>>) -> Answers {
    let collection = self.collection().await?;
    let filter = doc! { "_id": { "$in": destroys.sids() } };
    // The driver does not retry a multi-document delete across a failover: once here, which is
    // safe because deleting by id is idempotent.
    match collection.delete_many(filter.clone()).await {
      Err(e) if is_failover(&e) => collection.delete_many(filter).await,
      other => other,
    }
    .map_err(|e| classify(&e))?;
    batch_kinds::all_done(destroys)
  }
}

impl MongoBackend {
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

  /// The live filter (`live`) applied to one document already fetched, for a clock later than
  /// the one the find used: an `expires` that is not a date is live, as there.
  fn is_live(document: &Document, now_ms: f64) -> bool {
    match document.get("expires") {
      Some(Bson::DateTime(at)) => (at.timestamp_millis() as f64) > now_ms,
      _ => true,
    }
  }
}

/// The primary stepped down or is shutting down (the codes the driver's retryable writes retry
/// on): another member takes over within seconds.
fn is_failover(e: &mongodb::error::Error) -> bool {
  e.contains_label("RetryableWriteError")
    || matches!(&*e.kind, mongodb::error::ErrorKind::Command(c) if matches!(c.code, 91 | 189 | 10107 | 11600 | 11602 | 13435 | 13436))
}
