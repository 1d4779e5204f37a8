//! The rank parts of a retrieved unit ([`FEATURES`]) and their weights ([`WEIGHTS`]): a unit's
//! rank score is their dot product. `retrieve.rs` fills most parts while it scores the pooled
//! units; the two tie-breakers between definitions that the question's words cannot tell apart
//! (one nothing uses, one of several spellings of a name written as code) are set here.

use std::collections::BTreeMap;

use rwkv_index::{Index, name_key};

use crate::Result;
use crate::question::Question;
use crate::retrieve::{CODE_SCORE, Candidate, last_name};

/// How many parts [`Candidate::features`] has.
pub(crate) const FEATURE_COUNT: usize = 21;

/// Names of [`Candidate::features`], in order.
pub const FEATURES: [&str; FEATURE_COUNT] = [
    "name_code",
    "name_words",
    "bm25",
    "coverage",
    "doc_coverage",
    "bigrams",
    "fielded",
    "refs",
    "log_lines",
    "test",
    "tiny",
    "section",
    "shorter",
    "container",
    "head",
    "outright",
    "stub",
    "window",
    "calls",
    "unused",
    "exact",
];

/// Index of the `calls` feature (the unit calls one of the best units).
pub(crate) const CALLS: usize = 18;
/// Index of the `unused` feature (a named unit, no prose section, whose name nothing in the
/// store refers to).
pub(crate) const UNUSED: usize = 19;
/// The most definitions spelled as a name written as code for that spelling to count as
/// [`EXACT`].
const EXACT_MOST: usize = 3;
/// Index of the `name_code` feature (the name score of a name written as code).
const NAME_CODE: usize = 0;
/// Index of the `test` feature (a test, and the question is not about tests).
const TEST: usize = 9;
/// Index of the `exact` feature (of the definitions one key written as code names in several
/// spellings — `copytree`, `_copytree`, `copy_tree` — the one spelled as the question writes
/// it).
const EXACT: usize = 20;
/// Index of the `shorter` feature.
pub(crate) const SHORTER: usize = 12;

/// The weight of each of [`FEATURES`] in a unit's rank: learned on `benches/qa`'s question sets
/// (five code bases in three languages, 147 answerable questions) by a listwise softmax over
/// each question's best 20 units, and checked leaving each code base out in turn (see
/// `benches/qa/README.md`). A name written as code counts 10–14 in `name_code`, which with its
/// fields and coverage puts its definition first in most cases (49 of the 55 questions that name
/// code). One weight was set by hand later: `container` −0.715 → −1.5 (a class or interface head
/// first was wrong for 7 of the 11 questions of the nine sets where it came first; TypeScript's
/// class heads carry the class's whole doc comment). Nine sets: no gold unit falls; rxjs 4 → 6
/// first. `unused` was added later with a weight set by hand (−0.5, a tie-breaker between near
/// siblings; chosen on the feature dumps of the ten sets and five probes, where no set's gold
/// unit falls at it). So was `exact` (+4: in Python's standard library "What does `copytree`
/// do?" put distutils' `copy_tree` 3 points ahead of shutil's `copytree`; at +2 and +4 the
/// figures of the fifteen sets are unchanged).
pub(crate) const WEIGHTS: [f32; FEATURE_COUNT] = [
    0.296, -0.116, 5.175, -0.094, -4.622, 2.805, 9.186, 0.002, 1.273, -3.499, -0.947, -4.545, -2.620, -1.5, 3.540,
    -0.174, -3.246, 4.690, 0.616, -0.5, 4.0,
];

/// Puts the units of tests (the `test` feature: a test, and the question is not about tests)
/// after every other unit, keeping each group's order. Examples (`examples/`) stay where they
/// ranked: a question how to use something may be answered by one. A question not about tests
/// asks about the code they test: on the twenty-five sets of `benches/qa` no such question's
/// answer is a test, yet one came first for three of them.
pub(crate) fn tests_last(cands: &mut Vec<Candidate>) {
    let is_test = |c: &Candidate| c.features[TEST] > 0.0 && !is_example_path(&c.path);
    if cands.iter().any(is_test) {
        let (rest, tests): (Vec<Candidate>, Vec<Candidate>) =
            std::mem::take(cands).into_iter().partition(|c| !is_test(c));
        *cands = rest;
        cands.extend(tests);
    }
}

/// Whether a path runs through an `examples/` or `example/` folder.
fn is_example_path(path: &str) -> bool {
    path.split(['/', '\\'])
        .any(|c| c.eq_ignore_ascii_case("examples") || c.eq_ignore_ascii_case("example"))
}

/// A unit's rank score from its features.
pub(crate) fn learned_score(f: &[f32; FEATURE_COUNT]) -> f32 {
    f.iter().zip(WEIGHTS).map(|(x, w)| x * w).sum()
}

pub(crate) fn flag(b: bool) -> f32 {
    f32::from(u8::from(b))
}

/// Marks the definitions whose name no unit of the store refers to (`unused`).
pub(crate) fn mark_unused(index: &Index, cands: &mut [Candidate]) -> Result<()> {
    // Of near siblings, the definition something else in the store uses (calls, names as a
    // type) is more often the one a question is about than one nothing uses (a leftover, an
    // entry point of an example): the unused one waits a little. Only definitions wait: prose
    // (a doc section, a book's text) and unnamed units are read, not used, so they and code
    // still compete on equal terms.
    let mut unused: BTreeMap<String, bool> = BTreeMap::new();
    for c in cands.iter_mut() {
        let key = name_key(last_name(&c.name));
        if c.kind == "section" || key.is_empty() {
            continue;
        }
        let waits = match unused.get(&key) {
            Some(&u) => u,
            None => {
                let u = index.reference_doc_freq(&key)? == 0;
                unused.insert(key, u);
                u
            }
        };
        c.features[UNUSED] = flag(waits);
    }
    Ok(())
}

/// Marks, of the definitions one name written as code names in several spellings, the ones
/// spelled as written (`exact`).
pub(crate) fn mark_exact(q: &Question, cands: &mut [Candidate]) {
    // Of definitions that one key written as code names in several spellings (`copytree`,
    // `_copytree`, `copy_tree`), the one spelled as written is meant. Tests wait unless the
    // question is about them.
    for n in &q.code_names {
        let key = name_key(n);
        let named: Vec<usize> = (0..cands.len())
            .filter(|&i| cands[i].features[NAME_CODE] >= CODE_SCORE && name_key(last_name(&cands[i].name)) == key)
            .collect();
        let (spelled, other): (Vec<usize>, Vec<usize>) =
            named.into_iter().partition(|&i| last_name(&cands[i].name) == n);
        // A name many definitions share (`__init__`, `new`) singles none of them out.
        if !other.is_empty() && spelled.len() <= EXACT_MOST {
            for i in spelled {
                if cands[i].features[TEST] == 0.0 {
                    cands[i].features[EXACT] = 1.0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieve::tests::unit;

    #[test]
    fn tests_come_after_the_code_they_test() {
        let mut cands = vec![
            unit("test_hooks", "def test_hooks(): ...", 22.0),
            unit("run_hooks", "def run_hooks(cmd): ...", 20.0),
            unit("example_hooks", "def example_hooks(): ...", 19.0),
            unit("test_order", "def test_order(): ...", 18.0),
            unit("pre_run", "def pre_run(cmd): ...", 17.0),
        ];
        cands[0].features[TEST] = 1.0;
        cands[2].features[TEST] = 1.0;
        cands[2].path = "examples/hooks.py".into();
        cands[3].features[TEST] = 1.0;
        tests_last(&mut cands);
        let order: Vec<&str> = cands.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            order,
            ["run_hooks", "example_hooks", "pre_run", "test_hooks", "test_order"]
        );
        // Only tests (a question about tests leaves the feature unset): the order stands.
        let mut only = vec![unit("test_a", "", 2.0), unit("test_b", "", 1.0)];
        only.iter_mut().for_each(|c| c.features[TEST] = 1.0);
        tests_last(&mut only);
        assert_eq!(only[0].name, "test_a");
        assert!(is_example_path("a/Examples/x.go") && !is_example_path("src/example_data.rs"));
    }
}
