"""The SQL safety guard: one read-only SELECT over known tables and columns, or a clear refusal.

Generated SQL comes from a language model, so it is untrusted input. ``check_sql`` is the first of several layers
(the executor adds a read-only connection, ``PRAGMA query_only``, a SQLite authorizer, a time limit and a row
limit). It works on the sqlglot AST, never on regular expressions over the raw text, so a ``;`` or ``--`` inside a
string literal (``'csf;spinal fluid'`` is real EHRSQL gold) is fine while one outside a literal is rejected.

Order of the checks, and why:

1. the official EHRSQL post-processing (``post_process_sql``), so what we check is exactly what the official scorer
   would run (``current_time`` becomes ``'2100-12-31 23:59:00'`` and so on);
2. Unicode NFKC normalisation, *then* the character checks, so a fullwidth semicolon or a homoglyph keyword is
   turned into the ASCII character it imitates before we look for it; control and format characters (zero-width
   spaces, bidi overrides) are rejected outright, and non-ASCII is only allowed inside string literals;
3. tokenising: no comments (they can hide a second statement from a human reviewer), no ``;`` except one trailing;
4. parsing: exactly one statement, a SELECT / set operation of SELECTs, with no write, DDL, PRAGMA, ATTACH,
   transaction or ``SELECT ... INTO`` node anywhere in the tree, and no recursive CTE (the easiest unbounded loop);
5. names: tables must be allowed (CTE names and aliases are fine); qualified columns must belong to their table;
   bare columns must exist in some allowed table or be an alias defined in the query;
6. functions: an allowlist (EHRSQL uses a dozen); everything else, e.g. ``load_extension``, ``readfile``,
   ``randomblob``, ``read_csv``, is refused by name.

Error messages name the rule and at most a short identifier, never the query (it may quote patient values).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from ehrforge.errors import SQLGuardError
from ehrforge.tasks.sql import schema
from ehrforge.tasks.sql.schema import postprocess_sql

#: Longest SQL text we look at. EHRSQL gold SQL is at most ~1,200 characters; a 20k-character query is either an
#: attack (parser exhaustion) or a runaway generation.
MAX_SQL_CHARS = 20_000

#: Python's default recursion limit is reached by very deep nesting well before this; the limit keeps the
#: failure a clean SQLGuardError.
MAX_NESTING = 64

_HINT_SELECT = "generate a single read-only SELECT over the EHR tables"

# The official EHRSQL 2024 post-processing lives in schema.py (one place); re-exported here under the official
# name because the guard must check the SQL the official scorer would actually run.
post_process_sql = postprocess_sql


# --------------------------------------------------------------------------------------------------------------
# Allow/deny lists
# --------------------------------------------------------------------------------------------------------------

#: sqlglot expression classes that are function calls we allow. sqlglot maps many SQLite functions onto its own
#: classes (strftime -> TimeToStr, ifnull -> Coalesce, max(a, b) -> Greatest), so the allowlist is on classes;
#: functions sqlglot does not know arrive as ``exp.Anonymous`` and are checked by name below.
_ALLOWED_FUNC_CLASSES: tuple[type[exp.Expression], ...] = (
    # boolean connectives and conditionals are Func subclasses in sqlglot
    exp.And, exp.Or, exp.Xor, exp.Case, exp.If, exp.Cast, exp.TryCast, exp.Exists, exp.Collate,
    # aggregates
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.GroupConcat,
    # window functions
    exp.RowNumber, exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist, exp.Ntile, exp.Lag, exp.Lead,
    exp.FirstValue, exp.LastValue, exp.NthValue,
    # scalar
    exp.Greatest, exp.Least, exp.Abs, exp.Round, exp.Ceil, exp.Floor, exp.Sqrt, exp.Pow, exp.Log, exp.Ln, exp.Exp,
    exp.Sign, exp.Lower, exp.Upper, exp.Length, exp.Substring, exp.StrPosition, exp.Replace, exp.Trim,
    exp.Coalesce, exp.Nullif, exp.Typeof, exp.Hex, exp.Chr, exp.Unicode, exp.Concat, exp.Rand,
    # dates and times
    exp.Date, exp.TimeToStr, exp.TsOrDsToTimestamp, exp.StrToTime, exp.CurrentTimestamp, exp.CurrentDate,
    exp.CurrentTime,
)

#: Names (lower case) of SQLite functions we allow. Used for ``exp.Anonymous`` in the guard and, as the real
#: SQLite function names, by the executor's authorizer (a second, parser-independent layer).
ALLOWED_FUNCTION_NAMES: frozenset[str] = frozenset(
    {
        "count", "sum", "avg", "min", "max", "total", "group_concat", "string_agg",
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value",
        "last_value", "nth_value",
        "abs", "round", "ceil", "ceiling", "floor", "sqrt", "pow", "power", "log", "log10", "log2", "ln", "exp",
        "sign", "mod", "lower", "upper", "length", "substr", "substring", "instr", "replace", "trim", "ltrim",
        "rtrim", "coalesce", "ifnull", "nullif", "iif", "typeof", "hex", "char", "unicode", "concat", "random",
        "like", "glob", "likely", "unlikely", "likelihood", "quote",
        "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
        "current_timestamp", "current_date", "current_time",
    }
)

#: Functions named here get a specific reason in the message; any other unknown function is refused as well.
_DENIED_FUNCTION_REASONS = {
    "load_extension": "loads native code",
    "readfile": "reads server files",
    "writefile": "writes server files",
    "edit": "opens an editor",
    "randomblob": "can exhaust memory",
    "zeroblob": "can exhaust memory",
    "printf": "a width argument can exhaust memory",
    "format": "a width argument can exhaust memory",
    "fts3_tokenizer": "can call native code",
}
_DENIED_FUNCTION_PREFIXES = ("sqlite_", "fts", "read_", "pragma_", "json_each", "generate_series")

#: Statement / clause node types that must never appear anywhere in the tree.
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "DML", "DDL", "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable", "Command",
        "Pragma", "Attach", "Detach", "Transaction", "Commit", "Rollback", "Copy", "Into", "Set", "Use", "Lock",
        "Returning", "Analyze", "Describe", "Kill", "Grant", "Revoke", "Cache", "Uncache", "LoadData", "Refresh",
        "Summarize", "Show", "Execute", "Declare",
    )
    if hasattr(exp, name)
)

#: SQLite's implicit row-id columns; harmless to read.
_IMPLICIT_COLUMNS = frozenset({"rowid", "oid", "_rowid_"})

_ALLOWED_WHITESPACE = frozenset("\t\n\r ")


# The sqlglot logger prints the start of queries it cannot parse ("'...' contains unsupported syntax"), which may
# quote patient values. Drop exactly those records; leave the rest of sqlglot's logging alone.
class _NoQueryEcho(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "unsupported syntax" not in str(record.msg)


logging.getLogger("sqlglot").addFilter(_NoQueryEcho())


@dataclass(frozen=True)
class GuardedSQL:
    """SQL that passed the guard.

    ``sql`` is the text to execute: post-processed, NFKC-normalised, without a trailing semicolon (it is the text
    that was parsed, so what runs is what was checked). ``tree`` is its sqlglot AST; ``tables`` the real tables it
    reads (lower case), ``ctes`` the names it defines itself.
    """

    sql: str
    tree: exp.Expression
    tables: frozenset[str]
    ctes: frozenset[str]
    dialect: str = "sqlite"

    def to_dialect(self, dialect: str) -> str:
        """The same query in another SQL dialect (for DuckDB / PostgreSQL targets)."""
        if dialect == self.dialect:
            return self.sql
        from ehrforge.tasks.sql.dialects import sqlite_to

        return sqlite_to(self.tree, dialect) if self.dialect == "sqlite" else self.tree.sql(dialect=dialect)


_default_allowed: dict[str, frozenset[str]] | None = None


def default_allowed() -> dict[str, frozenset[str]]:
    """The EHRSQL MIMIC-IV demo schema (tables -> columns), loaded once from ``schema.table_columns()``."""
    global _default_allowed
    if _default_allowed is None:
        _default_allowed = {t.lower(): frozenset(c.lower() for c in cols) for t, cols in schema.table_columns().items()}
    return _default_allowed


def _normalise_allowed(allowed: Mapping[str, Collection[str]] | None) -> dict[str, frozenset[str]]:
    if allowed is None:
        return default_allowed()
    return {t.lower(): frozenset(c.lower() for c in cols) for t, cols in allowed.items()}


def _reject(message: str, hint: str = _HINT_SELECT) -> SQLGuardError:
    return SQLGuardError(message, hint)


def _short(name: str) -> str:
    """A name safe to show: identifiers only, clipped (never a chunk of the query)."""
    clean = re.sub(r"[^A-Za-z0-9_.]", "?", name)
    return clean[:40] + ("..." if len(clean) > 40 else "")


# --------------------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------------------


def _check_characters(sql: str) -> None:
    for ch in sql:
        if ch in _ALLOWED_WHITESPACE:
            continue
        category = unicodedata.category(ch)
        # Cc control, Cf format (zero-width, bidi overrides), Co/Cs/Cn private/surrogate/unassigned,
        # Zl/Zp line/paragraph separators: none has a place in a query and all are classic obfuscation tools.
        if category in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"):
            raise _reject(f"control or invisible character U+{ord(ch):04X} in SQL", "remove it and send plain text")


def _tokens(sql: str, dialect: str) -> list:
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    except (SqlglotError, ValueError, RecursionError) as err:
        raise _reject(f"SQL could not be tokenised ({type(err).__name__})") from None
    depth = max_depth = 0
    for i, tok in enumerate(tokens):
        if tok.comments:
            raise _reject("comments are not allowed in SQL", "remove '--' and '/* */' comments")
        if tok.token_type == TokenType.SEMICOLON and i != len(tokens) - 1:
            raise _reject("more than one statement (';' outside a string)", "send exactly one SELECT")
        if tok.token_type not in (TokenType.STRING, TokenType.NATIONAL_STRING) and not tok.text.isascii():
            raise _reject("non-ASCII characters outside a string literal", "use plain ASCII names and keywords")
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
            max_depth = max(max_depth, depth)
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
    if max_depth > MAX_NESTING:
        raise _reject(f"parentheses nested deeper than {MAX_NESTING}", "simplify the query")
    return tokens


def _parse_one(tokens: list, sql: str, dialect: str) -> exp.Expression:
    # Parse the tokens already checked above (tokenising twice would cost a third of the guard's time).
    try:
        statements = [s for s in Dialect.get_or_raise(dialect).parser().parse(tokens, sql) if s is not None]
    except (SqlglotError, ValueError, RecursionError) as err:
        raise _reject(f"SQL could not be parsed ({type(err).__name__})", "check the syntax; " + _HINT_SELECT) from None
    if len(statements) != 1:
        raise _reject(f"expected exactly one statement, got {len(statements)}", "send exactly one SELECT")
    return statements[0]


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()  # sqlglot's canonical name, e.g. READ_CSV


def _check_function(node: exp.Func) -> None:
    if isinstance(node, exp.Anonymous):
        name = str(node.name).lower()
        if name in ALLOWED_FUNCTION_NAMES:
            return
    elif isinstance(node, _ALLOWED_FUNC_CLASSES):
        return
    name = _function_name(node)
    reason = _DENIED_FUNCTION_REASONS.get(name)
    if reason is None and name.startswith(_DENIED_FUNCTION_PREFIXES):
        reason = "reaches outside the query"
    suffix = f" ({reason})" if reason else ""
    raise _reject(f"function '{_short(name)}' is not allowed{suffix}", "use standard SQLite functions only")


def _collect_scope_names(nodes: list[exp.Expression]) -> tuple[set[str], set[str]]:
    """CTE names, and derived names (subquery / CTE aliases, projection aliases, CTE column lists).

    Deliberately global rather than per scope: a bare column that names *some* alias of the query is accepted.
    That is looser than SQLite's resolution but never lets an unknown table through, and it keeps valid EHRSQL
    gold SQL (derived tables T1/T2 with aliased columns C1) accepted."""
    ctes: set[str] = set()
    derived: set[str] = set()
    for cte in (n for n in nodes if isinstance(n, exp.CTE)):
        ctes.add(cte.alias_or_name.lower())
        table_alias = cte.args.get("alias")
        if isinstance(table_alias, exp.TableAlias):
            derived.update(c.name.lower() for c in table_alias.columns)
    for alias in (n for n in nodes if isinstance(n, exp.TableAlias)):
        if alias.name:
            derived.add(alias.name.lower())
        derived.update(c.name.lower() for c in alias.columns)
    for alias in (n for n in nodes if isinstance(n, exp.Alias)):
        if alias.alias:
            derived.add(alias.alias.lower())
    return ctes, derived


def _table_key(table: exp.Table) -> str:
    parts = [p for p in (table.catalog, table.db, table.name) if p]
    return ".".join(parts).lower()


def _check_names(nodes: list[exp.Expression], allowed: dict[str, frozenset[str]]) -> tuple[frozenset[str], frozenset[str]]:
    ctes, derived = _collect_scope_names(nodes)
    alias_to_table: dict[str, str | None] = {}  # None: a CTE / derived table, whose columns we do not track
    tables: set[str] = set()
    for table in (n for n in nodes if isinstance(n, exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise _reject("table-valued functions are not allowed in FROM", "select from the EHR tables")
        key = _table_key(table)
        alias = (table.alias or table.name).lower()
        if key in allowed:
            tables.add(key)
            alias_to_table[alias] = key
            alias_to_table.setdefault(key, key)
        elif not table.db and key in ctes:
            alias_to_table[alias] = None
        else:
            raise _reject(f"unknown table '{_short(key)}'", "use only the EHR tables: " + ", ".join(sorted(allowed)))
    for sub in (n for n in nodes if isinstance(n, exp.Subquery)):
        if sub.alias:
            alias_to_table[sub.alias.lower()] = None

    known_columns = frozenset().union(*allowed.values()) if allowed else frozenset()
    for col in (n for n in nodes if isinstance(n, exp.Column)):
        if isinstance(col.this, exp.Star):
            name = "*"
        else:
            name = col.name.lower()
        if col.args.get("db") or col.args.get("catalog"):
            raise _reject(f"schema-qualified column '{_short(name)}' is not allowed", "write table.column")
        qualifier = col.table.lower() if col.table else ""
        if qualifier:
            if qualifier not in alias_to_table:
                raise _reject(f"unknown table or alias '{_short(qualifier)}'", "qualify columns with a table in FROM")
            real = alias_to_table[qualifier]
            if real is not None and name != "*" and name not in allowed[real] and name not in _IMPLICIT_COLUMNS:
                raise _reject(
                    f"unknown column '{_short(name)}' in table '{_short(real)}'",
                    f"columns of {real}: " + ", ".join(sorted(allowed[real])),
                )
        elif name != "*" and name not in known_columns and name not in derived and name not in _IMPLICIT_COLUMNS:
            raise _reject(f"unknown column '{_short(name)}'", "use columns of the EHR tables")
    return frozenset(tables), frozenset(ctes)


def _check_tree(tree: exp.Expression, nodes: list[exp.Expression]) -> None:
    root = tree.this if isinstance(tree, exp.Subquery) else tree
    if not isinstance(root, (exp.Select, exp.SetOperation, exp.Subquery)):
        raise _reject(f"only SELECT queries are allowed (got {type(root).__name__.upper()})")
    for node in nodes:
        if isinstance(node, _FORBIDDEN_NODES):
            raise _reject(f"{type(node).__name__.upper()} is not allowed inside a query")
        if isinstance(node, exp.With) and node.args.get("recursive"):
            raise _reject("recursive CTEs are not allowed", "rewrite without WITH RECURSIVE")
        if isinstance(node, exp.Func):
            _check_function(node)
        if isinstance(node, exp.Parameter) or isinstance(node, exp.Placeholder):
            raise _reject("query parameters are not allowed", "inline the values")


def check_sql(
    sql: str,
    allowed: Mapping[str, Collection[str]] | None = None,
    *,
    dialect: str = "sqlite",
    postprocess: bool = True,
) -> GuardedSQL:
    """Check untrusted SQL; return it normalised with its AST, or raise ``SQLGuardError`` naming the rule broken.

    ``allowed`` maps table -> columns (default: the EHRSQL MIMIC-IV demo schema). ``postprocess`` applies the
    official EHRSQL post-processing first (``current_time`` etc.); turn it off for databases that are not
    time-shifted to 2100.

    >>> allowed = {"patients": ["subject_id", "gender"]}
    >>> check_sql("SELECT COUNT(*) FROM patients WHERE patients.gender = 'f';", allowed).sql
    "SELECT COUNT(*) FROM patients WHERE patients.gender = 'f'"
    >>> check_sql("DROP TABLE patients", allowed)
    Traceback (most recent call last):
    ...
    ehrforge.errors.SQLGuardError: only SELECT queries are allowed (got DROP) — generate a single read-only SELECT over the EHR tables
    """
    if not isinstance(sql, str):
        raise _reject(f"SQL must be text, got {type(sql).__name__}")
    if len(sql) > MAX_SQL_CHARS:
        raise _reject(f"SQL is longer than {MAX_SQL_CHARS} characters", "simplify the query")
    allowed_map = _normalise_allowed(allowed)
    text = post_process_sql(sql) if postprocess else sql
    text = unicodedata.normalize("NFKC", text)
    _check_characters(text)
    text = text.strip()
    tokens = _tokens(text, dialect)
    if not tokens:
        raise _reject("empty SQL", _HINT_SELECT)
    if tokens[-1].token_type == TokenType.SEMICOLON:
        # One trailing ';' is how most models end a statement; drop it so the executed text has none.
        text = text[: tokens[-1].start].rstrip()
        tokens = tokens[:-1]
        if not tokens:
            raise _reject("empty SQL", _HINT_SELECT)
    tree = _parse_one(tokens, text, dialect)
    nodes = list(tree.walk())  # one walk, shared by every check below
    _check_tree(tree, nodes)
    tables, ctes = _check_names(nodes, allowed_map)
    return GuardedSQL(sql=text, tree=tree, tables=tables, ctes=ctes, dialect=dialect)


def is_safe(sql: str, allowed: Mapping[str, Collection[str]] | None = None, *, dialect: str = "sqlite") -> bool:
    """True when ``check_sql`` accepts ``sql`` (for filters and reward functions that only need a yes/no)."""
    try:
        check_sql(sql, allowed, dialect=dialect)
    except SQLGuardError:
        return False
    return True
