//! The guide's exercises (docs/guide/) hold: each one's
//! `<!-- check: ARGS => TEXT -->` boots `splitmap ARGS`, which must print
//! TEXT, and TEXT must contain the answer the guide states in bold, so a
//! change to the kernel that changes an answer fails here until the guide
//! says the new one.

mod common;
use common::*;

use std::path::Path;

/// One exercise: where it is, the stated answer, the command and the text.
struct Exercise {
    at: String,
    answer: String,
    args: Vec<String>,
    expected: String,
}

/// Words as a shell splits them: blanks separate, double quotes group.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut started) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => (quoted, started) = (!quoted, true),
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            c => (word, started) = (word + &c.to_string(), true),
        }
    }
    if started {
        words.push(word);
    }
    words
}

fn exercises(chapter: &Path) -> Vec<Exercise> {
    let text = std::fs::read_to_string(chapter).unwrap();
    let mut found = Vec::new();
    let mut answer: Option<String> = None;
    let mut in_answer = false;
    for (number, line) in text.lines().enumerate() {
        let at = format!("{}:{}", chapter.display(), number + 1);
        if line.starts_with("<details>") {
            (in_answer, answer) = (true, None);
        } else if line.starts_with("</details>") {
            in_answer = false;
        } else if in_answer && answer.is_none() {
            answer = line.split("**").nth(1).map(str::to_string);
        } else if let Some(check) = line.strip_prefix("<!-- check: ").and_then(|l| l.strip_suffix(" -->")) {
            let (args, expected) = check.split_once(" => ").unwrap_or_else(|| panic!("{at}: no ` => `"));
            found.push(Exercise {
                answer: answer
                    .take()
                    .unwrap_or_else(|| panic!("{at}: no **answer** in the <details> above")),
                args: words(args),
                expected: expected.to_string(),
                at,
            });
        }
    }
    found
}

#[test]
fn every_exercise_answer_is_what_the_kernel_prints() {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide");
    let index = std::fs::read_to_string(guide.join("README.md")).unwrap();
    let mut chapters: Vec<_> = std::fs::read_dir(&guide)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "README.md" && p.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    assert_eq!(chapters.len(), 9, "{chapters:?}");
    let mut all = Vec::new();
    for chapter in &chapters {
        let name = chapter.file_name().unwrap().to_str().unwrap();
        assert!(index.contains(&format!("]({name})")), "the index links {name}");
        let found = exercises(chapter);
        assert!(!found.is_empty(), "{name} has exercises");
        all.extend(found);
    }
    for e in &all {
        assert!(
            e.expected.contains(&e.answer),
            "{}: `{}` does not contain the answer `{}`",
            e.at,
            e.expected,
            e.answer
        );
    }
    in_parallel(&all, |e| {
        let args: Vec<&str> = e.args.iter().map(String::as_str).collect();
        let run = splitmap(&args);
        let output = format!("{}{}", run.stdout, run.stderr);
        assert!(
            output.contains(&e.expected),
            "{}: `splitmap {}` did not print `{}`:\n{output}",
            e.at,
            args.join(" "),
            e.expected
        );
    });
}

#[test]
fn check_lines_split_as_a_shell_would() {
    assert_eq!(
        words(r#"run --append "a=1 b=2" --cmd "walk 0x1"  --nokaslr"#),
        ["run", "--append", "a=1 b=2", "--cmd", "walk 0x1", "--nokaslr"]
    );
    assert_eq!(words(r#"run --append """#), ["run", "--append", ""]);
}
