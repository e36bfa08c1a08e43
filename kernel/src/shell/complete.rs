//! Tab completion: the words that can stand where the cursor is. The first
//! word is a command; after `help`, `crash`, `ptdump` or `lsmod`, the one
//! argument those take by name. Numbers and module names are not guessed.

use super::parse::{COMMANDS, CRASH_KINDS, PARTS};

/// What Tab does to a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Append `text`, then a space if `word_done` (the word has one match).
    Extend { text: &'static str, word_done: bool },
    /// Several words fit and share nothing more than is typed: show them.
    Choices,
    /// Nothing fits.
    Nothing,
}

/// Tab at the end of `line`.
pub fn complete(line: &str) -> Completion {
    let typed = last_word(line).len();
    let mut matches = choices(line);
    let Some(first) = matches.next() else {
        return Completion::Nothing;
    };
    let mut shared = first.len();
    let mut only = true;
    for word in matches {
        shared = common_prefix(&first[..shared], word);
        only = false;
    }
    match (only, shared > typed) {
        (true, _) => Completion::Extend {
            text: &first[typed..],
            word_done: true,
        },
        (false, true) => Completion::Extend {
            text: &first[typed..shared],
            word_done: false,
        },
        (false, false) => Completion::Choices,
    }
}

/// The words that fit at the end of `line`.
pub fn choices(line: &str) -> impl Iterator<Item = &'static str> + '_ {
    let word = last_word(line);
    let before = &line[..line.len() - word.len()];
    candidates(before).filter(move |w| w.starts_with(word))
}

fn last_word(line: &str) -> &str {
    line.rsplit(' ').next().unwrap_or(line)
}

/// The words that can follow `before` (the line up to the word being typed).
fn candidates(before: &str) -> impl Iterator<Item = &'static str> {
    let mut words = before.split_ascii_whitespace();
    let (first, second) = (words.next(), words.next());
    let argument_of = |command| first == Some(command) && second.is_none();
    let commands = (first.is_none() || argument_of("help")).then_some(COMMANDS.iter().map(|c| c.0));
    let kinds = argument_of("crash").then_some(CRASH_KINDS.iter().map(|c| c.0));
    let parts = argument_of("ptdump").then_some(PARTS.iter().map(|p| p.0));
    let flags = argument_of("lsmod").then_some(["-v"].into_iter());
    commands
        .into_iter()
        .flatten()
        .chain(kinds.into_iter().flatten())
        .chain(parts.into_iter().flatten())
        .chain(flags.into_iter().flatten())
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extend(text: &'static str, word_done: bool) -> Completion {
        Completion::Extend { text, word_done }
    }

    #[test]
    fn tab_completes_what_one_word_can_be() {
        let rows = [
            ("lay", extend("out", true)),
            ("", Completion::Choices),
            ("l", Completion::Choices), // layout, lsmod
            ("p", Completion::Choices), // phases, peek, pa2va, ptdump, poweroff
            ("po", extend("weroff", true)),
            ("in", extend("smod", true)),
            ("va2pa", extend("", true)),
            ("zz", Completion::Nothing),
            ("help wa", extend("lk", true)),
            ("crash wr", extend("ite-", false)),
            ("crash write-a", extend("lias", true)),
            ("ptdump im", extend("age", true)),
            ("lsmod ", extend("-v", true)),
            ("walk 0x", Completion::Nothing),
            ("help walk x", Completion::Nothing),
        ];
        for (line, expected) in rows {
            assert_eq!(complete(line), expected, "{line:?}");
        }
    }

    #[test]
    fn choices_are_the_matching_words() {
        let words: Vec<_> = choices("p").collect();
        assert_eq!(words, ["phases", "peek", "pa2va", "ptdump", "poweroff"]);
        assert_eq!(choices("crash s").collect::<Vec<_>>(), ["stack-overflow"]);
        assert_eq!(choices("").count(), COMMANDS.len());
    }
}
