//! One pass over the sources: the producer, the fold workers (one document at a time or in
//! lanes) and how a worker's error or panic ends the run.

use super::*;

/// One pass over the sources: a producer feeding the workers, in the index phase or the fold.
pub(super) fn run_pass(shared: &Shared<'_>) -> Result<()> {
    // Sources on a tokio runtime, feeding a bounded channel; fold workers drain it. A worker
    // that fails or panics closes the channel, so the producer's next send fails and the run
    // ends (it never waits on a channel no one reads).
    let cfg = shared.cfg;
    let jobs = cfg.jobs.max(1);
    let (tx, rx) = mpsc::sync_channel::<Document>(jobs * 2);
    let rx: Queue = Mutex::new(Some(rx));
    let mut source_error = None;
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| produce(shared, tx));
        // The index phase folds nothing: one document at a time per worker.
        let lanes = if shared.index_phase.load(Ordering::Relaxed) {
            1
        } else {
            cfg.lanes.max(1)
        };
        let rx = &rx;
        let workers: Vec<_> = (0..jobs)
            .map(|_| scope.spawn(move || run_worker(shared, rx, lanes)))
            .collect();
        let mut first = |r: std::thread::Result<Result<()>>| {
            let e = match r {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(payload) => Error::Panicked {
                    documents: Vec::new(),
                    message: panic_message(payload.as_ref()),
                },
            };
            source_error.get_or_insert(e);
        };
        // The workers first: their error is the cause when the producer stops because of it.
        let done: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        done.into_iter().for_each(&mut first);
        first(producer.join());
    });
    source_error.map_or(Ok(()), Err)
}

/// Drive the sources stream, sending documents of this shard to the workers.
fn produce(shared: &Shared<'_>, tx: mpsc::SyncSender<Document>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            path: PathBuf::from("<tokio runtime>"),
            source: e,
        })?;
    let sources = Sources::new(shared.cfg.sources.clone())?.inputs(shared.cfg.inputs.iter().map(|s| Input::parse(s)));
    let res = rt.block_on(async {
        let mut stream = std::pin::pin!(sources.stream());
        while let Some(item) = stream.next().await {
            if shared.progress.cancelled() {
                break;
            }
            match item {
                Ok(doc) => {
                    let id = doc.id.to_string();
                    if !in_shard(&id, shared.cfg.shard) {
                        continue;
                    }
                    shared.seen.lock().map_err(|_| poisoned())?.push(id);
                    shared.counts.documents.fetch_add(1, Ordering::Relaxed);
                    // Blocking send on a bounded channel: memory is bounded by the workers.
                    let tx = tx.clone();
                    if tokio::task::block_in_place(move || tx.send(doc).is_err()) {
                        break;
                    }
                }
                Err(e) => {
                    let counter = if e.is_policy_skip() {
                        &shared.counts.skipped
                    } else {
                        &shared.counts.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if !shared.index_phase.load(Ordering::Relaxed) {
                        shared.progress.skipped(e.at(), e.reason());
                    }
                    shared.skips.lock().map_err(|_| poisoned())?.push(Skip {
                        input: e.at().to_string(),
                        reason: e.reason().to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok::<(), Error>(())
    });
    drop(tx);
    rt.shutdown_background();
    res
}

/// One fold worker: documents until the queue is done. A worker that fails or panics closes
/// the queue (the producer then stops, and so do the other workers after their document); a
/// panic becomes [`Error::Panicked`] naming the documents it had in hand.
fn run_worker(shared: &Shared<'_>, rx: &Queue, lanes: usize) -> Result<()> {
    let in_hand = Mutex::new(Vec::new());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if lanes > 1 {
            work_lanes(shared, rx, lanes, &in_hand)
        } else {
            work(shared, rx, &in_hand)
        }
    }));
    let r = r.unwrap_or_else(|payload| {
        Err(Error::Panicked {
            documents: in_hand.into_inner().unwrap_or_else(|p| p.into_inner()),
            message: panic_message(payload.as_ref()),
        })
    });
    if r.is_err() {
        // Dropping the receiver fails the producer's next send.
        drop(rx.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
    r
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Adds (`true`) or removes a document from a worker's list of documents in hand.
fn hold(in_hand: &Mutex<Vec<String>>, name: &str, held: bool) {
    let mut h = in_hand.lock().unwrap_or_else(|p| p.into_inner());
    if held {
        h.push(name.to_string());
    } else if let Some(i) = h.iter().position(|n| n == name) {
        h.swap_remove(i);
    }
}

fn work(shared: &Shared<'_>, rx: &Queue, in_hand: &Mutex<Vec<String>>) -> Result<()> {
    while let Some(doc) = receive(rx)? {
        if shared.progress.cancelled() {
            continue;
        }
        fold_asked(shared)?;
        let name = doc.location();
        hold(in_hand, &name, true);
        if !shared.index_phase.load(Ordering::Relaxed) {
            panic_for_tests(&name);
        }
        match process(shared, &doc) {
            Ok(_) if shared.index_phase.load(Ordering::Relaxed) => {}
            Ok(outcome) => shared.progress.done(&name, outcome),
            Err(e) => fold_failed(shared, name.clone(), e)?,
        }
        hold(in_hand, &name, false);
    }
    Ok(())
}

/// A test hook: a fold worker panics on a document whose name ends with the value of
/// `RWKV_TEST_PANIC_ON` (how the tests make a worker panic in a real run; the index phase
/// has committed by then).
fn panic_for_tests(name: &str) {
    if let Ok(end) = std::env::var("RWKV_TEST_PANIC_ON")
        && !end.is_empty()
        && name.ends_with(&end)
    {
        panic!("injected test panic on {name}");
    }
}

/// The next document from the sources, `None` once they are done or the queue was closed.
fn receive(rx: &Queue) -> Result<Option<Document>> {
    let rx = rx.lock().map_err(|_| poisoned())?;
    Ok(rx.as_ref().and_then(|r| r.recv().ok()))
}

/// A document's fold failed: a fold error (the model refused it) is that document's failure,
/// recorded; anything else (the store, the disk) ends the run.
fn fold_failed(shared: &Shared<'_>, name: String, e: Error) -> Result<()> {
    match e {
        e @ (Error::Reader(_) | Error::Model(_)) => {
            shared.counts.failed.fetch_add(1, Ordering::Relaxed);
            shared.progress.done(&name, "failed");
            shared.skips.lock().map_err(|_| poisoned())?.push(Skip {
                input: name,
                reason: "fold".into(),
                message: e.to_string(),
            });
            Ok(())
        }
        e => Err(e),
    }
}

/// A fold worker with `lanes` lanes ([`Reader::fold_lanes`]): documents that need folding take
/// a lane as one frees; the others (unchanged, reindexed) are done on the way in. Each
/// document's checkpoints, commit and index entries are those of the one-document path.
fn work_lanes(shared: &Shared<'_>, rx: &Queue, lanes: usize, in_hand: &Mutex<Vec<String>>) -> Result<()> {
    let fatal: RefCell<Option<Error>> = RefCell::new(None);
    let stop = |e: Error| {
        fatal.borrow_mut().get_or_insert(e);
    };
    let next = || -> Option<FoldJob<Document>> {
        while fatal.borrow().is_none() {
            let doc = match receive(rx) {
                Ok(Some(d)) => d,
                Ok(None) => return None,
                Err(e) => {
                    stop(e);
                    return None;
                }
            };
            if shared.progress.cancelled() {
                continue;
            }
            if let Err(e) = fold_asked(shared) {
                stop(e);
                return None;
            }
            match triage(shared, &doc) {
                Ok(Some(outcome)) => shared.progress.done(&doc.location(), outcome),
                Ok(None) => match FoldJob::new(shared, doc) {
                    Ok(job) => {
                        hold(in_hand, &job.name, true);
                        panic_for_tests(&job.name);
                        return Some(job);
                    }
                    Err(e) => stop(e),
                },
                Err(e) => stop(e),
            }
        }
        None
    };
    let on_done = |job: FoldJob<Document>, res: rwkv_reader::Result<rwkv_reader::FoldSummary>| {
        let name = job.name.clone();
        match res.map_err(Error::from).and_then(|s| job.finish(shared, &s)) {
            Ok(()) => {
                shared.counts.folded.fetch_add(1, Ordering::Relaxed);
                shared.progress.done(&name, "folded");
            }
            Err(e) => {
                if let Err(e) = fold_failed(shared, name.clone(), e) {
                    stop(e);
                }
            }
        }
        hold(in_hand, &name, false);
    };
    shared
        .reader
        .fold_lanes(lanes, next, |job, cp| job.checkpoint(shared, cp), on_done);
    fatal.into_inner().map_or(Ok(()), Err)
}
