//! `pipelines/k8s/ingest-indexed-job.yaml` without a cluster: the manifests parse, the Indexed
//! Job's N agrees everywhere it is written, every pod and the merge mount the same claim, and the
//! pods' own shell scripts, run here as Kubernetes would run them (`JOB_COMPLETION_INDEX` set,
//! the shared volume a temporary directory), make a merged store equal to a single-process ingest.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use yaml_rust2::{Yaml, YamlLoader};

mod common;
use common::{blobs, copy_tree, manifest, root};

fn manifests() -> Vec<Yaml> {
    let path = root().join("pipelines/k8s/ingest-indexed-job.yaml");
    YamlLoader::load_from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn by_name<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env_of(container: &Yaml) -> Vec<(String, String)> {
    container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The script a container runs: `command: ["/bin/sh", "-c"]` and one argument.
fn script_of(container: &Yaml) -> String {
    let cmd: Vec<&str> = container["command"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cmd, ["/bin/sh", "-c"]);
    let args = container["args"].as_vec().unwrap();
    assert_eq!(args.len(), 1);
    args[0].as_str().unwrap().to_string()
}

/// Runs a container's script as its pod would, with `/shared` at `shared`: exit code, stdout.
fn run_pod(container: &Yaml, shared: &Path, index: Option<usize>) -> (i32, String) {
    let sh = shared.to_str().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_rwkv-ingest")).parent().unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script_of(container).replace("/shared", sh));
    for (k, v) in env_of(container) {
        // The model the manifest names is the user's; here the bundled demo model is.
        if k != "RWKV_MODEL" {
            cmd.env(k, v.replace("/shared", sh));
        }
    }
    cmd.env_remove("RWKV_MODEL")
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(i) = index {
        cmd.env("JOB_COMPLETION_INDEX", i.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("the pod's script did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_indexed_job_and_its_merge_agree_on_n_and_the_volume() {
    let docs = manifests();
    assert_eq!(docs.len(), 3);
    let claim = by_name(&docs, "PersistentVolumeClaim", "rwkv-shared");
    assert_eq!(claim["spec"]["accessModes"][0].as_str(), Some("ReadWriteMany"));

    let job = by_name(&docs, "Job", "rwkv-ingest");
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_i64().unwrap();
    assert!(n > 1 && spec["parallelism"].as_i64() == Some(n));
    assert_eq!(spec["template"]["spec"]["restartPolicy"].as_str(), Some("Never"));
    // Bad arguments (exit 2) fail the index instead of being retried.
    let rule = &spec["podFailurePolicy"]["rules"][0];
    assert_eq!(rule["action"].as_str(), Some("FailIndex"));
    assert_eq!(rule["onExitCodes"]["values"][0].as_i64(), Some(2));

    let merge = by_name(&docs, "Job", "rwkv-merge");
    let pod_specs = [&spec["template"]["spec"], &merge["spec"]["template"]["spec"]];
    let mut containers = vec![&pod_specs[0]["containers"][0], &pod_specs[1]["containers"][0]];
    containers.push(&pod_specs[1]["initContainers"][0]);
    for c in &containers {
        let count = env_of(c).into_iter().find(|(k, _)| k == "RWKV_SHARD_COUNT").unwrap().1;
        assert_eq!(
            count,
            n.to_string(),
            "RWKV_SHARD_COUNT of {:?} is completions",
            c["name"]
        );
        assert_eq!(c["volumeMounts"][0]["mountPath"].as_str(), Some("/shared"));
        assert_eq!(c["volumeMounts"][0]["name"].as_str(), Some("shared"));
    }
    for p in pod_specs {
        assert_eq!(
            p["volumes"][0]["persistentVolumeClaim"]["claimName"].as_str(),
            Some("rwkv-shared")
        );
    }
    let worker = script_of(&spec["template"]["spec"]["containers"][0]);
    assert!(worker.contains("--shard \"auto/$RWKV_SHARD_COUNT\""), "{worker}");
    assert!(worker.contains("shard-$JOB_COMPLETION_INDEX"), "{worker}");
}

#[test]
fn the_pods_scripts_make_the_single_run_store() {
    let docs = manifests();
    let job = by_name(&docs, "Job", "rwkv-ingest");
    let merge = by_name(&docs, "Job", "rwkv-merge");
    let n = job["spec"]["completions"].as_i64().unwrap() as usize;
    let worker = &job["spec"]["template"]["spec"]["containers"][0];

    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    let input = shared.join("input");
    copy_tree(&root().join("fixtures/code"), &input);
    let whole = tmp.path().join("whole");
    let out = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .args([input.to_str().unwrap(), "--store", whole.to_str().unwrap()])
        .env_remove("RWKV_MODEL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    for i in 0..n {
        let (code, out) = run_pod(worker, &shared, Some(i));
        assert_eq!(code, 0, "pod {i}: {out}");
        let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(v["shard"], serde_json::json!({"index": i, "count": n}));
    }
    // A replaced pod of a finished index exits at once.
    let (code, out) = run_pod(worker, &shared, Some(1));
    assert_eq!(code, 0);
    assert!(out.contains("skipped"), "{out}");

    let (code, _) = run_pod(&merge["spec"]["template"]["spec"]["initContainers"][0], &shared, None);
    assert_eq!(code, 0, "every shard is complete: the merge's wait ends");
    let (code, out) = run_pod(&merge["spec"]["template"]["spec"]["containers"][0], &shared, None);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["merged"].as_array().unwrap().len(), n);

    let store = shared.join("store");
    assert_eq!(manifest(&store), manifest(&whole));
    assert!(blobs(&store) == blobs(&whole), "the merged blobs are the single run's");
}
