//! The README's walk-through, run as printed. The real `imserver` starts on an ephemeral port
//! with a fresh data directory and the development app that `make run` serves; then every
//! `imctl` line of the README's walk-through block runs in order with the real `imctl` (only
//! `--addr` is added). A line ending in `&` runs in the background: the test waits for its
//! "watching" line, as the README's `sleep 1` does, and reads the rest of its output at the
//! end. Each command must exit 0 and print what it should; the expectations are derived from
//! the commands' own arguments and what the lines before them did, so the README and this
//! test cannot drift apart. A subcommand without an expectation here fails the test.
//!
//! Also: a failed command prints exactly one line, `error: MESSAGE (CodeName, number)`, and
//! exits with 1, even with RUST_BACKTRACE=1 set; `--verbose` adds the causes and backtrace.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use imserver::auth::ticket;
use imserver::config::{Config, DEV_SECRET};

mod common;
use common::{now_secs, spawn_process, write_config, Proc};

/// The development app of `make run` (the built-in default config).
const DEV_APP: u32 = 1400000000;

/// The server as `make run` runs it, on an ephemeral port and a fresh data directory.
fn start() -> (Proc, String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), DEV_APP, DEV_SECRET, "");
    // write_config ends inside the app's table, so this line is the app's.
    let text = std::fs::read_to_string(&cfg).unwrap() + "multi_device = \"any\"\n";
    std::fs::write(&cfg, &text).unwrap();
    let parsed = Config::from_toml(&text).unwrap();
    assert_eq!(format!("{:?}", parsed.apps), format!("{:?}", Config::default().apps), "not make run's app");
    let data = tmp.path().join("data");
    let (p, addr) = spawn_process(&["--config", cfg.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    (p, addr, tmp)
}

fn imctl(addr: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imctl"));
    c.arg("--addr").arg(addr).args(args);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The words of one line as `sh` splits them ('…' and "…" quotes, backslash escapes, `#`
/// starting a word begins a comment; an unquoted `&` is a word of its own), and whether the
/// line is plain: no expansion, pipe, redirection or `;` that this splitter does not perform.
fn shell_words(line: &str) -> (Vec<String>, bool) {
    let (mut words, mut cur, mut in_word, mut plain) = (Vec::new(), String::new(), false, true);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' if in_word => {
                words.push(std::mem::take(&mut cur));
                in_word = false;
            }
            ' ' | '\t' => {}
            '#' if !in_word => break,
            '&' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                words.push("&".into());
            }
            '\'' => {
                in_word = true;
                cur.extend(chars.by_ref().take_while(|c| *c != '\''));
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some(n) => cur.extend(['\\', n]),
                            None => {}
                        },
                        '$' | '`' => {
                            plain = false;
                            cur.push(c);
                        }
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            '$' | '`' | '|' | ';' | '<' | '>' | '(' | ')' => {
                plain = false;
                in_word = true;
                cur.push(c);
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    (words, plain)
}

/// The `imctl` lines of the README's walk-through block: each one's arguments after `imctl`
/// and whether it runs in the background.
fn walkthrough() -> Vec<(Vec<String>, bool)> {
    let readme = include_str!("../README.md");
    let section = readme.split("## Walk-through with `imctl`").nth(1).expect("the README has the walk-through");
    let block = section.split("```sh\n").nth(1).and_then(|b| b.split("```").next()).expect("its sh block");
    let mut out = Vec::new();
    for line in block.lines() {
        let (mut words, plain) = shell_words(line);
        if words.first().map(String::as_str) != Some("imctl") {
            continue;
        }
        assert!(plain, "the test runs imctl lines without a shell; keep them plain: {line}");
        let background = words.last().is_some_and(|w| w == "&");
        if background {
            words.pop();
        }
        assert!(!words.iter().any(|w| w == "&"), "one command a line: {line}");
        out.push((words.split_off(1), background));
    }
    out
}

/// Global flags that take a value (they may come before the subcommand).
const GLOBAL_VALUED: [&str; 7] = ["--addr", "--app", "--user", "--ticket", "--secret", "--client-type", "--device"];
/// Flags of subcommands that take no value.
const SWITCHES: [&str; 9] =
    ["--json", "--verbose", "--both", "--black", "--ack", "--remove", "--all", "--client-only", "--read-all"];

/// One command, taken apart.
struct Cmd {
    user: String,
    sub: String,
    /// Flag values by flag (`--fields` -> "nickname,extra"); switches map to "".
    flags: HashMap<String, String>,
    positional: Vec<String>,
}

impl Cmd {
    fn parse(args: &[String]) -> Cmd {
        let (mut flags, mut positional, mut sub) = (HashMap::new(), Vec::new(), None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if SWITCHES.contains(&a.as_str()) {
                flags.insert(a.clone(), String::new());
            } else if a.starts_with("--") {
                assert!(sub.is_some() || GLOBAL_VALUED.contains(&a.as_str()), "unknown global flag {a}");
                flags.insert(a.clone(), it.next().expect("a flag's value").clone());
            } else if sub.is_none() {
                sub = Some(a.clone());
            } else {
                positional.push(a.clone());
            }
        }
        let user = flags.get("--user").cloned().unwrap_or_else(|| "admin".into());
        Cmd { user, sub: sub.expect("a subcommand"), flags, positional }
    }

    fn flag(&self, f: &str) -> Option<&str> {
        self.flags.get(f).map(String::as_str)
    }

    fn arg(&self, i: usize) -> &str {
        &self.positional[i]
    }
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

/// What the lines so far did: the state the next line's output is checked against.
#[derive(Default)]
struct World {
    /// Profile fields by user (nickname, extra, signature, friend_add_policy...).
    profiles: HashMap<String, HashMap<String, String>>,
    /// (from, to, text) of every message, in order.
    sent: Vec<(String, String, String)>,
    /// Directed friendships (me, friend), blacklistings (me, them), pending requests (from, to).
    friends: HashSet<(String, String)>,
    black: HashSet<(String, String)>,
    requests: HashSet<(String, String)>,
    /// Users with a watcher running in the background.
    watching: HashSet<String>,
    /// Groups by id: their members, and (from, text) of their messages in order.
    groups: HashMap<String, Group>,
}

/// A group's members, and (from, text) of its messages in order.
type Group = (HashSet<String>, Vec<(String, String)>);

impl World {
    fn field(&self, user: &str, f: &str) -> Option<&str> {
        self.profiles.get(user).and_then(|p| p.get(f)).map(String::as_str)
    }

    fn between<'a>(&'a self, a: &'a str, b: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.sent.iter().filter(move |(f, t, _)| (f == a && t == b) || (f == b && t == a)).map(|m| m.2.as_str())
    }

    fn befriend(&mut self, a: &str, b: &str) {
        self.friends.insert(pair(a, b));
        self.friends.insert(pair(b, a));
    }

    /// Checks one foreground command's output and records what it did.
    fn check(&mut self, c: &Cmd, out: &str) {
        let has_line = |start: &str| out.lines().any(|l| l.trim_start().starts_with(start));
        let me = c.user.as_str();
        match c.sub.as_str() {
            "sign" => {
                let t = out.trim();
                ticket::verify(t, DEV_APP as u64, me, DEV_SECRET.as_bytes(), now_secs(), 60).expect("a valid ticket");
            }
            "import-users" => {
                for u in &c.positional {
                    let (id, nick) = u.split_once(':').unwrap_or((u.as_str(), ""));
                    assert!(has_line(&format!("{id}: ok")), "{id} imported");
                    let p = self.profiles.entry(id.into()).or_default();
                    p.insert("nickname".into(), nick.into());
                    p.extend(c.flag("--extra").map(|e| ("extra".to_string(), e.to_string())));
                }
            }
            "get-users" => {
                let fields: Vec<&str> = c.flag("--fields").map(|f| f.split(',').collect()).unwrap_or_default();
                for id in &c.positional {
                    assert!(out.lines().any(|l| l == id.as_str()), "{id}'s profile");
                    for f in &fields {
                        let want = self.field(id, f).unwrap_or_else(|| panic!("the walk-through set {id}'s {f}"));
                        assert!(out.contains(want), "{id}'s {f} {want}");
                    }
                }
                assert!(!out.contains("not found"));
            }
            "get-user" => {
                assert!(c.flags.contains_key("--json"), "expectation written for --json");
                let v: serde_json::Value = serde_json::from_str(out).expect("JSON");
                assert_eq!(v["user_id"], c.arg(0));
                assert_eq!(v["nickname"], self.field(c.arg(0), "nickname").unwrap());
            }
            "modify" => {
                for (flag, value) in &c.flags {
                    let Some(f) = flag.strip_prefix("--") else { continue };
                    if GLOBAL_VALUED.contains(&flag.as_str()) || SWITCHES.contains(&flag.as_str()) {
                        continue;
                    }
                    let f = if f == "friend-policy" { "friend_add_policy".to_string() } else { f.replace('-', "_") };
                    let row = out.lines().find_map(|l| l.trim_start().strip_prefix(f.as_str()).map(str::trim));
                    assert_eq!(row, Some(value.as_str()), "{f} changed");
                    self.profiles.entry(me.into()).or_default().insert(f, value.clone());
                }
            }
            "ping" => assert!(out.starts_with("pong: server time"), "{out}"),
            "status" => {
                for u in &c.positional {
                    let online = self.watching.contains(u);
                    assert!(has_line(&format!("{u}: online")) || (!online && has_line(&format!("{u}: offline"))));
                }
            }
            "send" => {
                let to = c.arg(0);
                let seq = self.between(me, to).count() + 1;
                assert!(out.starts_with(&format!("sent: seq {seq} server id ")), "{out}");
                self.sent.push((me.into(), to.into(), c.arg(1).into()));
            }
            "conversations" => {
                let peers: HashSet<&str> = self
                    .sent
                    .iter()
                    .filter(|m| m.0 == me)
                    .map(|m| m.1.as_str())
                    .chain(self.sent.iter().filter(|m| m.1 == me).map(|m| m.0.as_str()))
                    .collect();
                for p in peers {
                    let last = self.between(me, p).last().unwrap();
                    assert!(out.lines().any(|l| l.starts_with(p) && l.ends_with(&format!(": {last}"))), "{p}: {last}");
                }
            }
            "history" => {
                let texts: Vec<&str> = self.between(me, c.arg(0)).collect();
                let shown: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
                assert_eq!(shown.len(), texts.len(), "{out}");
                assert!(texts.iter().all(|t| shown.iter().any(|l| l.ends_with(&format!(": {t}")))), "{out}");
            }
            "read" => {
                let seq: usize = c.arg(1).parse().unwrap();
                assert!(seq >= 1 && seq <= self.between(me, c.arg(0)).count(), "the README reads a real seq");
                assert_eq!(out.trim(), format!("read up to {seq}"));
            }
            "sync" => {
                assert_eq!(c.arg(0), "messages", "expectation written for the messages stream");
                for (_, _, t) in self.sent.iter().filter(|m| m.0 == me || m.1 == me) {
                    assert!(out.contains(&format!(": {t}")), "{t} synced");
                }
            }
            "add-friend" => {
                let to = c.arg(0);
                if self.field(to, "friend_add_policy") == Some("1") {
                    assert!(out.contains(&format!("sent to {to} (waiting for approval)")), "{out}");
                    self.requests.insert(pair(me, to));
                } else {
                    assert_eq!(out.trim(), format!("friends with {to}"));
                    self.befriend(me, to);
                }
            }
            "friends" => {
                for (_, f) in self.friends.iter().filter(|(a, _)| a == me) {
                    assert!(has_line(&format!("{f} ")), "{f} is {me}'s friend: {out}");
                }
            }
            "check" => {
                assert!(c.flags.contains_key("--both") && !c.flags.contains_key("--black"), "expectation for --both");
                for u in &c.positional {
                    let rel = match (self.friends.contains(&pair(me, u)), self.friends.contains(&pair(u, me))) {
                        (true, true) => "Both",
                        (true, false) => "AToB",
                        (false, true) => "BToA",
                        (false, false) => "None",
                    };
                    assert!(has_line(&format!("{u}: {rel}")), "{out}");
                }
            }
            "requests" => {
                let approved = c.flag("--approve-from");
                for (from, _) in self.requests.iter().filter(|(_, to)| to == me) {
                    let state = if approved == Some(from.as_str()) { "approved" } else { "pending" };
                    assert!(out.lines().any(|l| l.contains(&format!("from {from} ")) && l.contains(state)), "{out}");
                }
                if let Some(from) = approved {
                    assert!(self.requests.remove(&pair(from, me)), "a request from {from} to approve");
                    self.befriend(me, from);
                }
            }
            "black" => {
                assert_eq!(out.trim(), "ok");
                self.black.insert(pair(me, c.arg(0)));
            }
            "relation" => {
                let p = c.arg(0);
                let (f, mine, theirs) = (
                    self.friends.contains(&pair(me, p)),
                    self.black.contains(&pair(me, p)),
                    self.black.contains(&pair(p, me)),
                );
                assert_eq!(out.trim(), format!("{p}: friend {f} in my blacklist {mine} in their blacklist {theirs}"));
            }
            "friend-groups" => {
                let name = c.flag("--create").expect("expectation written for --create");
                assert!(has_line(&format!("{name}: {}", c.positional.join(", "))), "{out}");
            }
            "group" => self.check_group(c, out),
            other => panic!("the README runs `imctl {other}`: add its expectation to tests/walkthrough.rs"),
        }
    }

    /// `imctl group ...`: the operation is the first positional word.
    fn check_group(&mut self, c: &Cmd, out: &str) {
        let me = c.user.as_str();
        let has_line = |l: &str| out.lines().any(|x| x.starts_with(l));
        match c.arg(0) {
            "create" => {
                let id = c.flag("--id").expect("the walk-through names its groups");
                assert!(has_line(&format!("created {id}")), "{out}");
                let mut members: HashSet<String> = c.positional[1..].iter().cloned().collect();
                for m in &members {
                    assert!(has_line(&format!("{m}: ok")), "{out}");
                }
                members.insert(me.to_owned());
                self.groups.insert(id.to_owned(), (members, Vec::new()));
            }
            "member" => {
                let role = ["member", "admin"][c.flag("--role").map_or(0, |r| r.parse::<usize>().unwrap())];
                assert!(has_line(&format!("{} {role}", c.arg(2))), "{out}");
            }
            "send" => {
                let (g, text) = (c.arg(1), c.arg(2));
                let msgs = &mut self.groups.get_mut(g).expect("a group of the walk-through").1;
                msgs.push((me.to_owned(), text.to_owned()));
                assert!(has_line(&format!("sent: seq {} ", msgs.len())), "{out}");
            }
            "catch-up" => {
                for (_, text) in &self.groups[c.arg(1)].1 {
                    assert!(out.contains(&format!(": {text}")), "{text} caught up: {out}");
                }
            }
            "read" => assert_eq!(out.trim(), "read"),
            "receipts" => {
                // Everyone but the sender could see it; those who read it received it too.
                let others = self.groups[c.arg(1)].0.len() - 1;
                assert!(has_line(&format!("of {others} members: ")), "{out}");
                assert!(out.contains(" read") && !out.contains(" 0 read"), "someone read it: {out}");
            }
            "joined" => {
                for (g, (members, _)) in &self.groups {
                    assert_eq!(has_line(&format!("{g} (")), members.contains(me), "{g} in {me}'s groups: {out}");
                }
            }
            "mute" => {
                for m in &c.positional[2..] {
                    assert!(has_line(&format!("{m}: ok")), "{out}");
                }
            }
            other => panic!("the README runs `imctl group {other}`: add its expectation to tests/walkthrough.rs"),
        }
    }

    /// Checks a background watcher's whole output once it has stopped.
    fn check_watcher(&self, c: &Cmd, out: &str) {
        assert_eq!(c.sub, "watch", "only watchers run in the background");
        for u in c.flag("--follow").map(|f| f.split(',').collect::<Vec<_>>()).unwrap_or_default() {
            assert!(out.contains(&format!("status: {u} online")), "{u} came online while watched: {out}");
        }
        if c.flags.contains_key("--ack") {
            for (_, _, t) in self.sent.iter().filter(|m| m.1 == c.user) {
                assert!(out.contains(&format!(": {t}\n")), "{t} pushed to {}: {out}", c.user);
            }
        }
    }
}

/// A watcher in the background: the rest of its output is read once it stops.
struct Background {
    cmd: Cmd,
    child: Child,
    stdout: BufReader<ChildStdout>,
    first: String,
}

fn succeeded(line: &str, o: &Output) -> String {
    let out = text(&o.stdout);
    assert!(o.status.success(), "`imctl {line}` failed ({}): {}{out}", o.status, text(&o.stderr));
    out
}

#[test]
fn the_readme_walkthrough_runs_as_printed() {
    let (_server, addr, _tmp) = start();
    let lines = walkthrough();
    assert!(lines.len() >= 20, "the walk-through block was found: {} lines", lines.len());
    let mut world = World::default();
    let mut background: Vec<Background> = Vec::new();
    for (args, bg) in &lines {
        let shown = args.join(" ");
        let cmd = Cmd::parse(args);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        if *bg {
            assert!(cmd.flag("--secs").is_some(), "a background watcher stops by itself: {shown}");
            let mut child = imctl(&addr, &argv).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            // Its "watching" line says it is logged in and subscribed (the README sleeps instead).
            let mut first = String::new();
            while !first.lines().any(|l| l.starts_with("watching as ")) {
                assert!(stdout.read_line(&mut first).unwrap() > 0, "`imctl {shown}` stopped: {first}");
            }
            world.watching.insert(cmd.user.clone());
            background.push(Background { cmd, child, stdout, first });
        } else {
            let out = succeeded(&shown, &imctl(&addr, &argv).output().unwrap());
            world.check(&cmd, &out);
        }
    }
    assert_eq!(background.len(), 2, "the two watchers");
    for mut b in background {
        let mut rest = String::new();
        b.stdout.read_to_string(&mut rest).unwrap();
        let o = b.child.wait_with_output().unwrap();
        let all = b.first + &rest;
        assert!(o.status.success(), "watcher of {} failed: {}{all}", b.cmd.user, text(&o.stderr));
        assert!(all.contains(&format!("watching as {}/", b.cmd.user)), "{all}");
        world.check_watcher(&b.cmd, &all);
    }
}

#[test]
fn an_error_is_one_line_with_its_code_and_exits_1() {
    let (_server, addr, _tmp) = start();
    let run = |args: &[&str]| imctl(&addr, args).env("RUST_BACKTRACE", "1").output().unwrap();
    succeeded("import-users alice", &run(&["import-users", "alice"]));

    // A server error: its message, its ErrorCode's name and number; no backtrace.
    for args in [["--user", "alice", "get-user", "nobody-such"], ["--user", "alice", "black", "nobody-such"]] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&o.stderr), "error: user not found (UserNotFound, 2000)\n", "{args:?}");
        assert_eq!(text(&o.stdout), "");
    }

    // --verbose: the same line first, then the causes and the backtrace RUST_BACKTRACE asked for.
    let o = run(&["--verbose", "--user", "alice", "get-user", "nobody-such"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    let mut lines = err.lines();
    assert_eq!(lines.next(), Some("error: user not found (UserNotFound, 2000)"));
    assert!(err.contains("caused by:\n  0: Server { code: UserNotFound"), "{err}");
    assert!(err.contains("backtrace:\n"), "{err}");

    // Login refused: the context and the server's error on one line.
    let o = run(&["--user", "alice", "--secret", "wrong", "ping"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: login: ") && err.ends_with(", 1008)\n"), "{err}");

    // Not a server error: a bad value clap accepts, and a refused connection.
    let o = run(&["--client-type", "martian", "ping"]);
    assert_eq!((o.status.code(), text(&o.stderr).as_str()), (Some(1), "error: unknown client type martian\n"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_imctl"))
        .args(["--addr", &closed, "ping"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("error: connecting to {closed}: io: ")), "{err}");
}
