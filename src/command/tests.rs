//! Parser tables: every command, its options and Redis' exact error replies.

use super::*;

fn argv(s: &str) -> Vec<Bytes> {
    s.split(' ')
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

fn p(s: &str) -> Result<Command, Reply> {
    parse(&argv(s))
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn ok(s: &str) -> Command {
    match p(s) {
        Ok(c) => c,
        Err(e) => panic!("{s}: unexpected error {e:?}"),
    }
}

fn err_text(s: &str) -> String {
    match parse(&argv(s)) {
        Err(Reply::Error(e)) => String::from_utf8_lossy(&e).into_owned(),
        other => panic!("{s}: expected an error, got {other:?}"),
    }
}

fn set(key: &str, value: &str, cond: SetCond, expire: Option<ExpireSpec>, get: bool) -> Command {
    Command::Write(WriteOp::Set {
        key: b(key),
        value: b(value),
        cond,
        expire,
        get,
    })
}

const SYNTAX: &str = "ERR syntax error";
const NOT_INT: &str = "ERR value is not an integer or out of range";

#[test]
fn names_are_case_insensitive() {
    assert_eq!(ok("GET k"), ok("get k"));
    assert_eq!(ok("gEt k"), Command::Read(ReadOp::Get { key: b("k") }));
    assert_eq!(ok("PiNg"), Command::Ping(None));
}

#[test]
fn unknown_command_format() {
    assert_eq!(
        err_text("foo a b"),
        "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        err_text("foo"),
        "ERR unknown command 'foo', with args beginning with: "
    );
    // Subcommand names are not top-level commands.
    assert!(err_text("client|id").starts_with("ERR unknown command 'client|id'"));
    // Long argument lists are cut once 128 bytes of arguments were written.
    let long = format!("nope {}", vec!["x".repeat(60); 5].join(" "));
    let e = err_text(&long);
    let args = e.split_once("with args beginning with: ").unwrap().1;
    assert_eq!(
        args,
        format!(
            "'{}' '{}' '{}' ",
            "x".repeat(60),
            "x".repeat(60),
            "x".repeat(2)
        )
    );
    // CR/LF never reach the protocol line.
    let e = parse(&[b("fo\r\no"), b("a\nb")]).unwrap_err();
    assert_eq!(
        e,
        Reply::err("ERR unknown command 'fo  o', with args beginning with: 'a b' ")
    );
    assert_eq!(parse(&[]), Err(Reply::err("ERR empty command")));
}

#[test]
fn arity_errors() {
    for (cmd, name) in [
        ("get", "get"),
        ("GET a b", "get"),
        ("set k", "set"),
        ("mset a", "mset"),
        ("mset a b c", "mset"),
        ("msetnx a b c", "msetnx"),
        ("incr", "incr"),
        ("ping a b", "ping"),
        ("echo", "echo"),
        ("client", "client"),
        ("client setname", "client|setname"),
        ("client id x", "client|id"),
        ("command count x", "command|count"),
        ("command getkeys get", "command|getkeys"),
        ("expire k", "expire"),
        ("dbsize x", "dbsize"),
        ("scan", "scan"),
        ("select", "select"),
    ] {
        assert_eq!(p(cmd), Err(Reply::wrong_arity(name)), "{cmd}");
    }
}

#[test]
fn set_options() {
    use ExpireSpec::*;
    use SetCond::*;
    let cases: &[(&str, Command)] = &[
        ("set k v", set("k", "v", Always, None, false)),
        ("set k v nx", set("k", "v", IfAbsent, None, false)),
        ("set k v XX", set("k", "v", IfPresent, None, false)),
        ("set k v get", set("k", "v", Always, None, true)),
        ("set k v nx get", set("k", "v", IfAbsent, None, true)),
        ("set k v get xx", set("k", "v", IfPresent, None, true)),
        (
            "set k v ex 10",
            set("k", "v", Always, Some(In(10_000)), false),
        ),
        ("set k v px 10", set("k", "v", Always, Some(In(10)), false)),
        (
            "set k v exat 10",
            set("k", "v", Always, Some(At(10_000)), false),
        ),
        (
            "set k v pxat 10",
            set("k", "v", Always, Some(At(10)), false),
        ),
        ("set k v keepttl", set("k", "v", Always, Some(Keep), false)),
        (
            "set k v keepttl keepttl",
            set("k", "v", Always, Some(Keep), false),
        ),
        (
            "set k v ex 10 ex 20",
            set("k", "v", Always, Some(In(20_000)), false),
        ),
        ("set k v nx nx", set("k", "v", IfAbsent, None, false)),
        (
            "set k v xx px 5 get",
            set("k", "v", IfPresent, Some(In(5)), true),
        ),
        (
            "set k v pxat 9223372036854775807",
            set("k", "v", Always, Some(At(i64::MAX as u64)), false),
        ),
        (
            "set k v ex 9223370000000000",
            set("k", "v", Always, Some(In(9_223_370_000_000_000_000)), false),
        ),
        // The key and value may look like options.
        ("set nx ex", set("nx", "ex", Always, None, false)),
    ];
    for (cmd, want) in cases {
        assert_eq!(&ok(cmd), want, "{cmd}");
    }
    let errors: &[(&str, &str)] = &[
        ("set k v nx xx", SYNTAX),
        ("set k v xx nx", SYNTAX),
        ("set k v ex 10 px 100", SYNTAX),
        ("set k v px 1 ex 1", SYNTAX),
        ("set k v exat 1 pxat 1", SYNTAX),
        ("set k v keepttl ex 10", SYNTAX),
        ("set k v ex 10 keepttl", SYNTAX),
        ("set k v ex", SYNTAX),
        ("set k v foo", SYNTAX),
        ("set k v ex abc", NOT_INT),
        ("set k v ex 0", "ERR invalid expire time in 'set' command"),
        ("set k v ex -1", "ERR invalid expire time in 'set' command"),
        ("set k v exat 0", "ERR invalid expire time in 'set' command"),
        ("set k v px 0", "ERR invalid expire time in 'set' command"),
        (
            "set k v ex 9223372036854776",
            "ERR invalid expire time in 'set' command",
        ),
        // Overflows once added to any clock after 2020.
        (
            "set k v ex 9223372036854775",
            "ERR invalid expire time in 'set' command",
        ),
        (
            "set k v px 9223372036854775807",
            "ERR invalid expire time in 'set' command",
        ),
        // Syntax is checked before the number.
        ("set k v ex abc foo", SYNTAX),
    ];
    for (cmd, want) in errors {
        assert_eq!(err_text(cmd), *want, "{cmd}");
    }
    // Options are compared as C strings.
    assert_eq!(
        parse(&[b("set"), b("k"), b("v"), b("nx\0junk")]),
        Ok(set("k", "v", SetCond::IfAbsent, None, false))
    );
}

#[test]
fn set_family() {
    use ExpireSpec::*;
    assert_eq!(
        ok("setnx k v"),
        Command::Write(WriteOp::SetNx {
            key: b("k"),
            value: b("v")
        })
    );
    assert_eq!(
        ok("setex k 10 v"),
        set("k", "v", SetCond::Always, Some(In(10_000)), false)
    );
    assert_eq!(
        ok("psetex k 10 v"),
        set("k", "v", SetCond::Always, Some(In(10)), false)
    );
    assert_eq!(ok("getset k v"), set("k", "v", SetCond::Always, None, true));
    assert_eq!(
        ok("getdel k"),
        Command::Write(WriteOp::GetDel { key: b("k") })
    );
    assert_eq!(
        err_text("setex k 0 v"),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        err_text("psetex k -1 v"),
        "ERR invalid expire time in 'psetex' command"
    );
    assert_eq!(err_text("setex k abc v"), NOT_INT);
    assert_eq!(
        err_text("psetex k 9223372036854775807 v"),
        "ERR invalid expire time in 'psetex' command"
    );
}

#[test]
fn multi_key_commands() {
    let keys = |ks: &[&str]| ks.iter().map(|k| b(k)).collect::<Vec<_>>();
    assert_eq!(ok("mget a b a"), Command::MGet(keys(&["a", "b", "a"])));
    assert_eq!(
        ok("mset a 1 b 2"),
        Command::MSet(vec![(b("a"), b("1")), (b("b"), b("2"))])
    );
    assert_eq!(ok("msetnx a 1"), Command::MSetNx(vec![(b("a"), b("1"))]));
    assert_eq!(ok("del a b"), Command::Del(keys(&["a", "b"])));
    assert_eq!(ok("unlink a"), Command::Del(keys(&["a"])));
    assert_eq!(ok("exists a a"), Command::Exists(keys(&["a", "a"])));
}

#[test]
fn counters() {
    let incr = |delta| Command::Write(WriteOp::IncrBy { key: b("n"), delta });
    assert_eq!(ok("incr n"), incr(1));
    assert_eq!(ok("decr n"), incr(-1));
    assert_eq!(ok("incrby n -5"), incr(-5));
    assert_eq!(ok("decrby n 5"), incr(-5));
    assert_eq!(ok("decrby n -9223372036854775807"), incr(i64::MAX));
    assert_eq!(
        err_text("decrby n -9223372036854775808"),
        "ERR decrement would overflow"
    );
    for bad in ["1.5", " 1", "+1", "01", "", "9223372036854775808"] {
        assert_eq!(
            parse(&[b("incrby"), b("n"), b(bad)]),
            Err(Reply::not_integer()),
            "{bad:?}"
        );
    }
    assert_eq!(
        ok("incrbyfloat n 0.1"),
        Command::Write(WriteOp::IncrByFloat {
            key: b("n"),
            delta: 0.1
        })
    );
    assert_eq!(
        ok("incrbyfloat n inf"),
        Command::Write(WriteOp::IncrByFloat {
            key: b("n"),
            delta: f64::INFINITY
        })
    );
    for bad in ["abc", "nan", "1 ", "", "1e"] {
        assert_eq!(
            parse(&[b("incrbyfloat"), b("n"), b(bad)]),
            Err(Reply::err("ERR value is not a valid float")),
            "{bad:?}"
        );
    }
}

#[test]
fn string_ranges() {
    assert_eq!(
        ok("append k v"),
        Command::Write(WriteOp::Append {
            key: b("k"),
            value: b("v")
        })
    );
    assert_eq!(
        ok("setrange k 5 v"),
        Command::Write(WriteOp::SetRange {
            key: b("k"),
            offset: 5,
            value: b("v")
        })
    );
    assert_eq!(err_text("setrange k -1 v"), "ERR offset is out of range");
    assert_eq!(err_text("setrange k x v"), NOT_INT);
    assert_eq!(
        ok("getrange k -3 -1"),
        Command::Read(ReadOp::GetRange {
            key: b("k"),
            start: -3,
            end: -1
        })
    );
    assert_eq!(err_text("getrange k a 1"), NOT_INT);
    assert_eq!(
        ok("strlen k"),
        Command::Read(ReadOp::Strlen { key: b("k") })
    );
}

#[test]
fn expire_family() {
    use ExpireCond::*;
    use ExpireSpec::*;
    let exp = |at, cond| {
        Command::Write(WriteOp::Expire {
            key: b("k"),
            at,
            cond,
        })
    };
    let cases: &[(&str, Command)] = &[
        ("expire k 10", exp(In(10_000), Always)),
        ("pexpire k 10", exp(In(10), Always)),
        ("expireat k 10", exp(At(10_000), Always)),
        ("pexpireat k 10", exp(At(10), Always)),
        ("expire k 0", exp(In(0), Always)),
        ("expire k -10", exp(At(0), Always)),
        ("pexpire k -1", exp(At(0), Always)),
        ("expireat k -5", exp(At(0), Always)),
        ("pexpireat k -5", exp(At(0), Always)),
        ("expire k 10 nx", exp(In(10_000), IfNoTtl)),
        ("expire k 10 NX nx", exp(In(10_000), IfNoTtl)),
        ("expire k 10 xx", exp(In(10_000), IfTtl)),
        ("expire k 10 gt", exp(In(10_000), Greater)),
        ("expire k 10 xx gt", exp(In(10_000), Greater)),
        ("expire k 10 lt", exp(In(10_000), Less)),
        ("expire k 10 lt xx", exp(In(10_000), IfTtlLess)),
        (
            "pexpireat k 9223372036854775807",
            exp(At(i64::MAX as u64), Always),
        ),
    ];
    for (cmd, want) in cases {
        assert_eq!(&ok(cmd), want, "{cmd}");
    }
    let nx_err = "ERR NX and XX, GT or LT options at the same time are not compatible";
    let errors: &[(&str, &str)] = &[
        ("expire k 10 nx xx", nx_err),
        ("expire k 10 gt nx", nx_err),
        ("expire k 10 nx lt", nx_err),
        (
            "expire k 10 gt lt",
            "ERR GT and LT options at the same time are not compatible",
        ),
        ("expire k 10 foo", "ERR Unsupported option foo"),
        // Options are validated before the number.
        ("expire k abc foo", "ERR Unsupported option foo"),
        ("expire k abc", NOT_INT),
        (
            "expire k 9223372036854776",
            "ERR invalid expire time in 'expire' command",
        ),
        (
            "expireat k -9223372036854776",
            "ERR invalid expire time in 'expireat' command",
        ),
        (
            "pexpire k 9223372036854775807",
            "ERR invalid expire time in 'pexpire' command",
        ),
    ];
    for (cmd, want) in errors {
        assert_eq!(err_text(cmd), *want, "{cmd}");
    }
    assert_eq!(
        ok("persist k"),
        Command::Write(WriteOp::Persist { key: b("k") })
    );
    assert_eq!(
        ok("ttl k"),
        Command::Read(ReadOp::Ttl {
            key: b("k"),
            ms: false
        })
    );
    assert_eq!(
        ok("pttl k"),
        Command::Read(ReadOp::Ttl {
            key: b("k"),
            ms: true
        })
    );
    assert_eq!(ok("type k"), Command::Read(ReadOp::Type { key: b("k") }));
}

#[test]
fn keyspace_commands() {
    assert_eq!(ok("dbsize"), Command::DbSize);
    assert_eq!(ok("flushall"), Command::FlushAll);
    assert_eq!(ok("flushall ASYNC"), Command::FlushAll);
    assert_eq!(ok("flushall sync"), Command::FlushAll);
    assert_eq!(err_text("flushall foo"), SYNTAX);
    assert_eq!(err_text("flushall async sync"), SYNTAX);
    assert_eq!(ok("keys user:*"), Command::Keys(b("user:*")));
}

#[test]
fn scan() {
    let scan = |cursor, pattern: Option<&str>, count, ty: Option<&str>| Command::Scan {
        cursor,
        pattern: pattern.map(b),
        count,
        type_filter: ty.map(b),
    };
    assert_eq!(ok("scan 0"), scan(0, None, 10, None));
    assert_eq!(
        ok("scan 17 MATCH a* COUNT 100 TYPE string"),
        scan(17, Some("a*"), 100, Some("string"))
    );
    assert_eq!(ok("scan 0 match *"), scan(0, None, 10, None));
    assert_eq!(ok("scan 0 count 5 count 7"), scan(0, None, 7, None));
    // strtoul cursor rules, as observed on Redis 7.0.
    for (cursor, want) in [
        ("", Some(0)),
        ("+5", Some(5)),
        ("-1", Some(u64::MAX)),
        ("18446744073709551615", Some(u64::MAX)),
        ("5\0x", Some(5)),
        ("18446744073709551616", None),
        (" 5", None),
        ("0x5", None),
        ("5 ", None),
        ("-", None),
        ("abc", None),
    ] {
        let got = parse(&[b("scan"), b(cursor)]);
        match want {
            Some(c) => assert_eq!(got, Ok(scan(c, None, 10, None)), "{cursor:?}"),
            None => assert_eq!(got, Err(Reply::err("ERR invalid cursor")), "{cursor:?}"),
        }
    }
    assert_eq!(err_text("scan 0 count 0"), SYNTAX);
    assert_eq!(err_text("scan 0 count -1"), SYNTAX);
    assert_eq!(err_text("scan 0 count x"), NOT_INT);
    assert_eq!(err_text("scan 0 match"), SYNTAX);
    assert_eq!(err_text("scan 0 foo bar"), SYNTAX);
    assert_eq!(err_text("scan x count 0"), "ERR invalid cursor");
}

#[test]
fn connection_commands() {
    assert_eq!(ok("ping"), Command::Ping(None));
    assert_eq!(ok("ping hi"), Command::Ping(Some(b("hi"))));
    assert_eq!(ok("echo hi"), Command::Immediate(Reply::Bulk(b("hi"))));
    assert_eq!(ok("quit"), Command::Quit);
    assert_eq!(ok("select 0"), Command::Immediate(Reply::Ok));
    assert_eq!(err_text("select 1"), "ERR DB index is out of range");
    assert_eq!(err_text("select abc"), NOT_INT);
    assert_eq!(err_text("select 4294967296"), NOT_INT);
    assert_eq!(ok("info"), Command::Info(vec![]));
    assert_eq!(
        ok("info Server KEYSPACE"),
        Command::Info(vec![b("server"), b("keyspace")])
    );
}

#[test]
fn hello() {
    let hello = |protover, setname: Option<&str>| Command::Hello {
        protover,
        setname: setname.map(b),
    };
    assert_eq!(ok("hello"), hello(None, None));
    assert_eq!(ok("hello 3"), hello(Some(3), None));
    assert_eq!(ok("HELLO 2 setname app"), hello(Some(2), Some("app")));
    assert_eq!(
        ok("hello 3 auth default secret setname app"),
        hello(Some(3), Some("app"))
    );
    assert_eq!(err_text("hello 4"), "NOPROTO unsupported protocol version");
    assert_eq!(err_text("hello 1"), "NOPROTO unsupported protocol version");
    assert_eq!(
        err_text("hello abc"),
        "ERR Protocol version is not an integer or out of range"
    );
    assert_eq!(
        err_text("hello 3 foo"),
        "ERR Syntax error in HELLO option 'foo'"
    );
    assert_eq!(
        err_text("hello 2 auth default"),
        "ERR Syntax error in HELLO option 'auth'"
    );
    assert_eq!(
        err_text("hello 2 setname a b"),
        "ERR Syntax error in HELLO option 'b'"
    );
    assert_eq!(
        err_text("hello 2 auth bob x"),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        parse(&[b("hello"), b("3"), b("setname"), b("a b")]),
        Err(Reply::err(
            "ERR Client names cannot contain spaces, newlines or special characters."
        ))
    );
}

#[test]
fn client_subcommands() {
    assert_eq!(
        ok("client setname app-1"),
        Command::ClientSetName(b("app-1"))
    );
    assert_eq!(
        parse(&[b("client"), b("setname"), b("")]),
        Ok(Command::ClientSetName(b("")))
    );
    for bad in ["a b", "a\nb", "caf\u{e9}"] {
        assert_eq!(
            parse(&[b("client"), b("setname"), b(bad)]),
            Err(Reply::err(
                "ERR Client names cannot contain spaces, newlines or special characters."
            )),
            "{bad:?}"
        );
    }
    assert_eq!(ok("CLIENT GETNAME"), Command::ClientGetName);
    assert_eq!(ok("client id"), Command::ClientId);
    assert_eq!(ok("client info"), Command::ClientInfo);
    assert_eq!(ok("client list"), Command::ClientList);
    assert_eq!(ok("client list type normal"), Command::ClientList);
    assert_eq!(ok("client list id 1 2"), Command::ClientList);
    assert_eq!(
        err_text("client list type foo"),
        "ERR Unknown client type 'foo'"
    );
    assert_eq!(err_text("client list id x"), "ERR Invalid client ID");
    assert_eq!(err_text("client list foo"), SYNTAX);
    assert_eq!(
        ok("client setinfo lib-name redis-py"),
        Command::Immediate(Reply::Ok)
    );
    assert_eq!(
        ok("client setinfo LIB-VER 5.0.1"),
        Command::Immediate(Reply::Ok)
    );
    assert_eq!(
        err_text("client setinfo foo x"),
        "ERR Unrecognized option 'foo'"
    );
    assert_eq!(ok("client no-evict on"), Command::Immediate(Reply::Ok));
    assert_eq!(ok("client no-touch OFF"), Command::Immediate(Reply::Ok));
    assert_eq!(err_text("client no-evict maybe"), SYNTAX);
    assert_eq!(
        err_text("client foo"),
        "ERR unknown subcommand 'foo'. Try CLIENT HELP."
    );
    assert_eq!(
        err_text("Client kill x"),
        "ERR unknown subcommand 'kill'. Try CLIENT HELP."
    );
    assert!(matches!(ok("client help"), Command::Immediate(Reply::Array(l)) if !l.is_empty()));
}

fn immediate(s: &str) -> Reply {
    match ok(s) {
        Command::Immediate(r) => r,
        other => panic!("{s}: expected an immediate reply, got {other:?}"),
    }
}

#[test]
fn command_introspection() {
    assert_eq!(
        immediate("command count"),
        Reply::Int(COMMANDS.len() as i64)
    );
    let Reply::Array(all) = immediate("command") else {
        panic!()
    };
    assert_eq!(all.len(), COMMANDS.len());
    // COMMAND INFO get: Redis 7 shape, 10 fields.
    let Reply::Array(infos) = immediate("command info get nosuch client|setname") else {
        panic!()
    };
    assert_eq!(infos.len(), 3);
    assert_eq!(infos[1], Reply::Nil);
    let Reply::Array(get) = &infos[0] else {
        panic!()
    };
    assert_eq!(get.len(), 10);
    assert_eq!(get[0], Reply::Bulk(b("get")));
    assert_eq!(get[1], Reply::Int(2));
    assert_eq!(
        get[2],
        Reply::Array(vec![Reply::status("readonly"), Reply::status("fast")])
    );
    assert_eq!(&get[3..6], &[Reply::Int(1), Reply::Int(1), Reply::Int(1)]);
    assert_eq!(
        get[6],
        Reply::Array(vec![
            Reply::status("@read"),
            Reply::status("@string"),
            Reply::status("@fast")
        ])
    );
    let Reply::Array(specs) = &get[8] else {
        panic!()
    };
    assert_eq!(specs.len(), 1);
    let Reply::Array(setname) = &infos[2] else {
        panic!()
    };
    assert_eq!(setname[0], Reply::Bulk(b("client|setname")));
    // CLIENT lists its subcommands in field 10.
    let Reply::Array(client) = immediate("command info client") else {
        panic!()
    };
    let Reply::Array(client) = &client[0] else {
        panic!()
    };
    assert!(matches!(&client[9], Reply::Array(subs) if subs.len() >= 5));
    assert_eq!(immediate("command docs get"), Reply::Map(vec![]));
    assert_eq!(immediate("command docs"), Reply::Map(vec![]));
    assert!(matches!(immediate("command help"), Reply::Array(l) if !l.is_empty()));
    assert_eq!(
        err_text("command foo"),
        "ERR unknown subcommand 'foo'. Try COMMAND HELP."
    );
}

#[test]
fn command_list_and_getkeys() {
    let names = |r: Reply| match r {
        Reply::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let all = names(immediate("command list"));
    assert!(all.contains(&"get".to_string()));
    assert!(all.contains(&"client|setname".to_string()));
    let mut exp = names(immediate("command list filterby pattern EXP*"));
    exp.sort();
    assert_eq!(exp, ["expire", "expireat"]);
    let conn = names(immediate("command list filterby aclcat connection"));
    assert!(conn.contains(&"ping".to_string()) && !conn.contains(&"get".to_string()));
    assert!(names(immediate("command list filterby module x")).is_empty());
    assert_eq!(err_text("command list filterby foo x"), SYNTAX);
    assert_eq!(err_text("command list foo"), SYNTAX);

    assert_eq!(names(immediate("command getkeys set a b")), ["a"]);
    assert_eq!(names(immediate("command getkeys mset a 1 c 2")), ["a", "c"]);
    assert_eq!(
        names(immediate("command getkeys del x y z")),
        ["x", "y", "z"]
    );
    assert_eq!(
        err_text("command getkeys nosuch a"),
        "ERR Invalid command specified"
    );
    assert_eq!(
        err_text("command getkeys ping x"),
        "ERR The command has no key arguments"
    );
    assert_eq!(
        err_text("command getkeys get a b"),
        "ERR Invalid number of arguments specified for command"
    );
}

#[test]
fn table_is_consistent() {
    for s in COMMANDS.iter().chain(SUBCOMMANDS) {
        assert_eq!(s.name, s.name.to_ascii_lowercase());
        assert_eq!(spec(&s.name.to_ascii_uppercase()), Some(s));
        assert!(s.arity != 0, "{}", s.name);
        assert_eq!(s.first_key > 0, !s.key_flags.is_empty(), "{}", s.name);
        assert!(s.is_write() != s.flags.contains(&"readonly") || s.first_key == 0);
    }
    // Every command leasekv parses has a spec, and every spec parses.
    for s in COMMANDS {
        let min = s.arity.unsigned_abs() as usize;
        let mut args: Vec<Bytes> = vec![b(s.name)];
        args.resize(min, b("1"));
        if s.name == "client" || s.name == "command" || s.name == "cluster" {
            args.push(b("help"));
        }
        if let Err(e) = parse(&args) {
            assert!(
                !matches!(&e, Reply::Error(m) if m.starts_with(b"ERR unknown command")),
                "{} not parsed",
                s.name
            );
        }
    }
    assert_eq!(spec("nosuch"), None);
    assert_eq!(spec("GET").map(|s| s.key_positions(2)), Some(vec![1]));
    assert_eq!(spec("mset").map(|s| s.key_positions(5)), Some(vec![1, 3]));
}

#[test]
fn cluster_commands() {
    for (s, q) in [
        ("cluster slots", ClusterQuery::Slots),
        ("CLUSTER Shards", ClusterQuery::Shards),
        ("cluster nodes", ClusterQuery::Nodes),
        ("cluster myid", ClusterQuery::MyId),
        ("cluster info", ClusterQuery::Info),
    ] {
        assert_eq!(ok(s), Command::Cluster(q), "{s}");
    }
    // Redis Cluster's reference values; a hash tag picks the hashed part.
    assert_eq!(immediate("cluster keyslot 123456789"), Reply::Int(12739));
    assert_eq!(immediate("cluster keyslot {a}b"), Reply::Int(15495));
    assert_eq!(immediate("cluster keyslot {}"), Reply::Int(15257));
    assert!(matches!(immediate("cluster help"), Reply::Array(l) if l.len() > 10));
    for s in ["readonly", "READWRITE", "asking"] {
        assert_eq!(immediate(s), Reply::Ok, "{s}");
    }

    for (cmd, name) in [
        ("cluster", "cluster"),
        ("cluster keyslot", "cluster|keyslot"),
        ("cluster KEYSLOT x y", "cluster|keyslot"),
        ("cluster myid x", "cluster|myid"),
        ("cluster slots x", "cluster|slots"),
        ("cluster getkeysinslot 1", "cluster|getkeysinslot"),
        ("readonly x", "readonly"),
        ("asking x", "asking"),
    ] {
        assert_eq!(p(cmd), Err(Reply::wrong_arity(name)), "{cmd}");
    }
    assert_eq!(
        err_text("cluster foo"),
        "ERR unknown subcommand 'foo'. Try CLUSTER HELP."
    );
    assert_eq!(
        err_text("cluster addslots 1"),
        "ERR unknown subcommand 'addslots'. Try CLUSTER HELP."
    );
    assert_eq!(err_text("cluster countkeysinslot x"), NOT_INT);
    assert_eq!(err_text("cluster countkeysinslot -1"), "ERR Invalid slot");
    assert_eq!(
        err_text("cluster countkeysinslot 16384"),
        "ERR Invalid slot"
    );
    assert!(err_text("cluster countkeysinslot 0").contains("not supported"));
    assert_eq!(err_text("cluster getkeysinslot 1 x"), NOT_INT);
    for bad in [
        "cluster getkeysinslot 16384 1",
        "cluster getkeysinslot 1 -1",
    ] {
        assert_eq!(err_text(bad), "ERR Invalid slot or number of keys", "{bad}");
    }
    assert!(err_text("cluster getkeysinslot 16383 10").contains("not supported"));

    // COMMAND INFO knows them, with Redis 7's arity and subcommands.
    let Reply::Array(infos) = immediate("command info cluster cluster|keyslot readonly asking")
    else {
        panic!()
    };
    let field = |i: usize, f: usize| match &infos[i] {
        Reply::Array(v) => v[f].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(field(0, 1), Reply::Int(-2));
    assert!(matches!(field(0, 9), Reply::Array(subs) if subs.len() == 9));
    assert_eq!(field(1, 1), Reply::Int(3));
    assert_eq!(field(2, 1), Reply::Int(1));
    assert_eq!(field(3, 0), Reply::Bulk(b("asking")));
}
