//! Which shard of a sharded ingest this run is: `I/N` as written, or taken from the variables a
//! cluster engine sets for each worker (Slurm job arrays, Kubernetes Indexed Jobs).

use std::str::FromStr;

/// The variables cluster engines set for a worker's index, in the order they are read: Slurm
/// job arrays, then Kubernetes Indexed Jobs.
pub const SHARD_INDEX_VARS: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

/// The variable a Slurm job array sets to its number of tasks.
pub const SHARD_COUNT_VAR: &str = "SLURM_ARRAY_TASK_COUNT";

/// A shard as asked for (`--shard`): fixed, or with its index (and count) from the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardSpec {
    /// `I/N`.
    Fixed(u64, u64),
    /// `auto/N` (`Some(N)`) or `auto` (`None`: N from `$SLURM_ARRAY_TASK_COUNT`).
    Auto(Option<u64>),
}

/// A shard that cannot be parsed or resolved. The messages name the `--shard` forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// Neither `I/N`, `auto/N` nor `auto`.
    #[error("expected I/N, auto/N or auto, e.g. 0/4")]
    Syntax,
    /// N is not a number.
    #[error("bad N in {0:?}")]
    BadCount(String),
    /// N is 0.
    #[error("shard {0}: N must be at least 1")]
    ZeroCount(String),
    /// I is not a number.
    #[error("bad I in {0:?}")]
    BadIndex(String),
    /// Not `0 <= I < N`.
    #[error("shard {index}/{count}: need 0 <= I < N")]
    OutOfRange {
        /// I.
        index: u64,
        /// N.
        count: u64,
    },
    /// `auto` outside a Slurm array task.
    #[error(
        "--shard auto: $SLURM_ARRAY_TASK_COUNT is not set (not a Slurm array task); give the count: --shard auto/N"
    )]
    NoCount,
    /// `$SLURM_ARRAY_TASK_COUNT` is not a number.
    #[error("--shard auto: $SLURM_ARRAY_TASK_COUNT={0:?} is not a number")]
    CountNotANumber(String),
    /// `auto/N` with no index variable set.
    #[error(
        "--shard auto/{count}: neither $SLURM_ARRAY_TASK_ID nor $JOB_COMPLETION_INDEX is set (not a Slurm array task or a Kubernetes Indexed Job); give the index: --shard I/{count}"
    )]
    NoIndex {
        /// N.
        count: u64,
    },
    /// The index variable is not a number.
    #[error("--shard auto/{count}: ${var}={value:?} is not a number")]
    IndexNotANumber {
        /// N.
        count: u64,
        /// The variable read.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// The index variable is not below N.
    #[error(
        "--shard auto/{count}: ${var}={index} is out of range 0..{count} (a Slurm array must be --array=0-{})",
        count.saturating_sub(1)
    )]
    IndexOutOfRange {
        /// N.
        count: u64,
        /// The variable read.
        var: &'static str,
        /// Its value.
        index: u64,
    },
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    /// `I/N`, `auto/N` or `auto` (N at least 1, I below N).
    fn from_str(s: &str) -> Result<ShardSpec, ShardError> {
        let s = s.trim();
        if s == "auto" {
            return Ok(ShardSpec::Auto(None));
        }
        let (i, n) = s.split_once('/').ok_or(ShardError::Syntax)?;
        let n: u64 = n.trim().parse().map_err(|_| ShardError::BadCount(s.to_string()))?;
        if n == 0 {
            return Err(ShardError::ZeroCount(s.to_string()));
        }
        if i.trim() == "auto" {
            return Ok(ShardSpec::Auto(Some(n)));
        }
        let i: u64 = i.trim().parse().map_err(|_| ShardError::BadIndex(s.to_string()))?;
        if i >= n {
            return Err(ShardError::OutOfRange { index: i, count: n });
        }
        Ok(ShardSpec::Fixed(i, n))
    }
}

impl ShardSpec {
    /// The shard `(I, N)`, reading the engine's variables through `env` (a variable's value,
    /// `None` when unset) for `auto`: N from `$SLURM_ARRAY_TASK_COUNT` unless given, I from the
    /// first of [`SHARD_INDEX_VARS`] that is set and not blank.
    pub fn resolve(self, env: impl Fn(&str) -> Option<String>) -> Result<(u64, u64), ShardError> {
        let (i, n) = match self {
            ShardSpec::Fixed(i, n) => (i, n),
            ShardSpec::Auto(n) => {
                let n = match n {
                    Some(n) => n,
                    None => {
                        let v = env(SHARD_COUNT_VAR).ok_or(ShardError::NoCount)?;
                        v.trim().parse().map_err(|_| ShardError::CountNotANumber(v))?
                    }
                };
                let (var, v) = SHARD_INDEX_VARS
                    .iter()
                    .find_map(|k| env(k).filter(|v| !v.trim().is_empty()).map(|v| (*k, v)))
                    .ok_or(ShardError::NoIndex { count: n })?;
                let i = v.trim().parse().map_err(|_| ShardError::IndexNotANumber {
                    count: n,
                    var,
                    value: v.clone(),
                })?;
                if i >= n {
                    return Err(ShardError::IndexOutOfRange {
                        count: n,
                        var,
                        index: i,
                    });
                }
                (i, n)
            }
        };
        if n == 0 || i >= n {
            return Err(ShardError::OutOfRange { index: i, count: n });
        }
        Ok((i, n))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Resolve with `vars` as the whole environment.
    fn resolve(s: ShardSpec, vars: &[(&str, &str)]) -> Result<(u64, u64), ShardError> {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        s.resolve(|k| env.get(k).cloned())
    }

    #[test]
    fn shards_parse() {
        assert_eq!("1/4".parse(), Ok(ShardSpec::Fixed(1, 4)));
        assert_eq!(" 0 / 1 ".parse(), Ok(ShardSpec::Fixed(0, 1)));
        assert_eq!("auto/3".parse(), Ok(ShardSpec::Auto(Some(3))));
        assert_eq!("auto".parse(), Ok(ShardSpec::Auto(None)));
        assert_eq!(
            "4/4".parse::<ShardSpec>(),
            Err(ShardError::OutOfRange { index: 4, count: 4 })
        );
        assert_eq!("0/0".parse::<ShardSpec>(), Err(ShardError::ZeroCount("0/0".into())));
        assert_eq!(
            "auto/0".parse::<ShardSpec>(),
            Err(ShardError::ZeroCount("auto/0".into()))
        );
        assert_eq!("x".parse::<ShardSpec>(), Err(ShardError::Syntax));
        assert_eq!("x/2".parse::<ShardSpec>(), Err(ShardError::BadIndex("x/2".into())));
        assert_eq!("1/y".parse::<ShardSpec>(), Err(ShardError::BadCount("1/y".into())));
        assert_eq!(ShardError::Syntax.to_string(), "expected I/N, auto/N or auto, e.g. 0/4");
        assert_eq!(
            "4/4".parse::<ShardSpec>().unwrap_err().to_string(),
            "shard 4/4: need 0 <= I < N"
        );
    }

    #[test]
    fn a_fixed_shard_ignores_the_environment() {
        let slurm = [("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "3")];
        assert_eq!(resolve(ShardSpec::Fixed(0, 2), &slurm), Ok((0, 2)));
        assert_eq!(resolve(ShardSpec::Fixed(1, 2), &[]), Ok((1, 2)));
        // A hand-made spec is still checked.
        assert_eq!(
            resolve(ShardSpec::Fixed(2, 2), &[]),
            Err(ShardError::OutOfRange { index: 2, count: 2 })
        );
        assert_eq!(
            resolve(ShardSpec::Fixed(0, 0), &[]),
            Err(ShardError::OutOfRange { index: 0, count: 0 })
        );
    }

    #[test]
    fn slurm_array_tasks_give_index_and_count() {
        let slurm = [("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "3")];
        assert_eq!(resolve(ShardSpec::Auto(None), &slurm), Ok((2, 3)));
        assert_eq!(resolve(ShardSpec::Auto(Some(3)), &slurm), Ok((2, 3)));
        // Whitespace around values is fine.
        let padded = [("SLURM_ARRAY_TASK_ID", " 1\n"), ("SLURM_ARRAY_TASK_COUNT", " 4 ")];
        assert_eq!(resolve(ShardSpec::Auto(None), &padded), Ok((1, 4)));
        let e = resolve(ShardSpec::Auto(Some(2)), &slurm).unwrap_err();
        assert_eq!(
            e,
            ShardError::IndexOutOfRange {
                count: 2,
                var: "SLURM_ARRAY_TASK_ID",
                index: 2
            }
        );
        assert_eq!(
            e.to_string(),
            "--shard auto/2: $SLURM_ARRAY_TASK_ID=2 is out of range 0..2 (a Slurm array must be --array=0-1)"
        );
        let e = resolve(ShardSpec::Auto(None), &[("SLURM_ARRAY_TASK_COUNT", "many")]).unwrap_err();
        assert_eq!(e, ShardError::CountNotANumber("many".into()));
        assert_eq!(
            e.to_string(),
            "--shard auto: $SLURM_ARRAY_TASK_COUNT=\"many\" is not a number"
        );
    }

    #[test]
    fn kubernetes_indexed_jobs_give_the_index() {
        let k8s = [("JOB_COMPLETION_INDEX", "1")];
        assert_eq!(resolve(ShardSpec::Auto(Some(3)), &k8s), Ok((1, 3)));
        // Slurm's variable comes first; a blank one is passed over.
        let both = [("SLURM_ARRAY_TASK_ID", "0"), ("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(resolve(ShardSpec::Auto(Some(3)), &both), Ok((0, 3)));
        let blank = [("SLURM_ARRAY_TASK_ID", " "), ("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(resolve(ShardSpec::Auto(Some(3)), &blank), Ok((2, 3)));
        // `auto` alone needs Slurm's count.
        let e = resolve(ShardSpec::Auto(None), &k8s).unwrap_err();
        assert_eq!(e, ShardError::NoCount);
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
        let e = resolve(ShardSpec::Auto(Some(2)), &[("JOB_COMPLETION_INDEX", "one")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--shard auto/2: $JOB_COMPLETION_INDEX=\"one\" is not a number"
        );
    }

    #[test]
    fn no_engine_is_an_error_naming_both_variables() {
        let e = resolve(ShardSpec::Auto(Some(2)), &[]).unwrap_err();
        assert_eq!(e, ShardError::NoIndex { count: 2 });
        assert_eq!(
            e.to_string(),
            "--shard auto/2: neither $SLURM_ARRAY_TASK_ID nor $JOB_COMPLETION_INDEX is set (not a Slurm array task or a Kubernetes Indexed Job); give the index: --shard I/2"
        );
        assert_eq!(
            resolve(ShardSpec::Auto(None), &[]).unwrap_err().to_string(),
            "--shard auto: $SLURM_ARRAY_TASK_COUNT is not set (not a Slurm array task); give the count: --shard auto/N"
        );
    }
}
