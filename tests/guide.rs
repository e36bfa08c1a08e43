//! The guide's exercises (docs/guide/) hold: each one's
//! `<!-- check: ARGS => TEXT -->` boots `splitmap ARGS`, which must print
//! TEXT, and TEXT must contain the answer the guide states in bold, so a
//! change to the kernel that changes an answer fails here until the guide
//! says the new one. Each exercise also shows the learner the one
//! `$ cargo run -- ARGS` line it means, and those ARGS must be the check's:
//! a visible command that drifts from the checked one would teach an answer
//! the learner's own run does not print.

mod common;
use common::*;

use std::path::Path;

/// One exercise: where it is, the stated answer, the command and the text,
/// and the `$ cargo run -- …` lines shown to the learner since the exercise
/// before (exactly one is right).
struct Exercise {
    at: String,
    answer: String,
    args: Vec<String>,
    expected: String,
    shown: Vec<Vec<String>>,
}

/// What a learner types, as the guide prints it.
const SHOWN: &str = "$ cargo run -- ";

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
    parse(
        &chapter.display().to_string(),
        &std::fs::read_to_string(chapter).unwrap(),
    )
}

fn parse(name: &str, text: &str) -> Vec<Exercise> {
    let mut found = Vec::new();
    let mut answer: Option<String> = None;
    let mut shown = Vec::new();
    let mut in_answer = false;
    for (number, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", number + 1);
        if let Some(command) = line.trim_start().strip_prefix(SHOWN) {
            shown.push(words(command));
        } else if line.starts_with("<details>") {
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
                shown: std::mem::take(&mut shown),
                at,
            });
        }
    }
    found
}

/// Words joined back into a line, quoted where a shell would need it.
fn line(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(char::is_whitespace) {
                format!("\"{w}\"")
            } else {
                w.clone()
            }
        })
        .collect();
    quoted.join(" ")
}

/// Each exercise whose visible command is missing, doubled, or not the one
/// its check boots, said as the learner would need it fixed.
fn unlike_their_checks(all: &[Exercise]) -> Vec<String> {
    all.iter()
        .filter(|e| e.shown.len() != 1 || e.shown[0] != e.args)
        .map(|e| {
            let shown: Vec<String> = e.shown.iter().map(|w| format!("`{SHOWN}{}`", line(w))).collect();
            format!(
                "{}: the check boots `{}`, but the exercise shows {}",
                e.at,
                line(&e.args),
                if shown.is_empty() {
                    "no command".to_string()
                } else {
                    shown.join(" and ")
                }
            )
        })
        .collect()
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
    assert_eq!(chapters.len(), 12, "{chapters:?}");
    let mut all = Vec::new();
    for chapter in &chapters {
        let name = chapter.file_name().unwrap().to_str().unwrap();
        assert!(index.contains(&format!("]({name})")), "the index links {name}");
        let found = exercises(chapter);
        assert!(!found.is_empty(), "{name} has exercises");
        all.extend(found);
    }
    let unlike = unlike_their_checks(&all);
    assert!(unlike.is_empty(), "{}", unlike.join("\n"));
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

#[test]
fn a_shown_command_unlike_its_check_is_caught() {
    // Chapter 3's first exercise as it once was: the check had `--nokaslr`,
    // the question did not, and a KASLR boot answers 18/64, not 15/64.
    let chapter = |shown: &str| {
        format!(
            "**1.** How many pages?\n\n```\n{shown}\n```\n\n<details><summary>Answer</summary>\n\n**15/64**.\n\n</details>\n\
             <!-- check: run --nokaslr --cmd layout => table pool: 15/64 pages used -->\n"
        )
    };
    let right = parse("right.md", &chapter("$ cargo run -- run --nokaslr --cmd layout"));
    assert_eq!(unlike_their_checks(&right), Vec::<String>::new());
    let spaced = parse("spaced.md", &chapter("$ cargo run -- run  --nokaslr --cmd \"layout\""));
    assert_eq!(
        unlike_their_checks(&spaced),
        Vec::<String>::new(),
        "the words count, as a shell splits them"
    );
    let wrong = parse("wrong.md", &chapter("$ cargo run -- run --cmd layout"));
    assert_eq!(
        unlike_their_checks(&wrong),
        [
            "wrong.md:12: the check boots `run --nokaslr --cmd layout`, but the exercise shows `$ cargo run -- run --cmd layout`"
        ]
    );
    let none = parse("none.md", &chapter("cargo run"));
    assert_eq!(unlike_their_checks(&none).len(), 1, "an exercise must show its command");
}
