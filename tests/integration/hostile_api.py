#!/usr/bin/env python3
"""A hostile stand-in for Microsoft's APIs, written apart from the project's emulator.

It speaks the Entra ID token endpoint (v1 and v2, client credentials), the Defender for
Endpoint alerts API (GET /api/alerts) and Microsoft Graph (GET /v1.0/security/alerts_v2)
from the public documentation alone (tests/../spec), over a fixed, seeded set of alerts,
and can behave in legal but unkind ways (--mode, comma-separated):

  ignore_orderby      $orderby is accepted and ignored: matches come in `id` order (with
                      --sorted-runs K, ids run in time order K alerts at a time, so that a
                      page of K looks sorted while the next one goes back in time)
  future              some alerts are stamped lastUpdateTime 2100-01-01T00:00:00Z
  pretty              every JSON body is pretty-printed ("key": "value", indented)
  absurd_retry_after  the first API request of each tenant is answered 429 with an absurd
                      Retry-After (--retry-after-for TENANT=KIND: huge, date9999, negative,
                      junk or a literal value; default huge); later requests are served
  short_retry_after   the 2nd, the 4th and then every --throttle-every'th API request of a
                      tenant is answered 429 with Retry-After 1 or (every other time) an
                      HTTP-date 2 s ahead; a request before that time is counted as early
                      (and answered 429 again)
  foreign_next_link   @odata.nextLink names another host: a second listener on 127.0.0.2
                      that records every request and Authorization header it receives
  revoke_401          after --revoke-after API requests every token issued so far is revoked:
                      requests carrying one get 401 (a new token request gets a new token)
  clock_behind        the API's clock (its Date header and the alerts' times) runs
  clock_ahead         --clock-skew seconds (default 420) behind or ahead of the real clock

Graph security incidents (GET /v1.0/security/incidents and /v1.0/security/incidents/{id}):
the alerts are grouped into incidents of their own here (numeric ids; an incident's
lastUpdateDateTime moves whenever one of its alerts changes). $top > 50 and $skip > 500 are
400s, $filter takes lastUpdateDateTime, createdDateTime, status, severity, assignedTo,
classification, determination; $expand=alerts adds `alerts` (no such key without it);
@odata.nextLink (absolute) while more matches remain. The modes above apply to them too
(ignore_orderby: id order; future: the 2100 alerts are incidents of their own, stamped
2100), and these are theirs alone:

  no_next_link        never an @odata.nextLink: pages are positional, by $skip or time only
  expand_500          a listing with $expand=alerts whose page holds an incident with more
                      than --expand-fail-above alerts answers 500 (GET /{id} still works)
  get_500             with expand_500: GET /incidents/{id} of such an incident answers 500
                      too (its alerts cannot be read at all)
  one_instant         --incident-burst incidents (default 60) share one lastUpdateDateTime
                      (and have the lowest ids and the earliest creation times): a page of
                      them is one instant. --burst-time within (default): that instant is
                      the newest of their alerts' times, and other incidents, listed after
                      them, were last updated before it; oldest: every other incident was
                      updated after it
  --change-before-get K  the first K GET /incidents/{id} find their incident changed just
                      before they answer (a new lastUpdateDateTime): the version listed is
                      gone by the time its alerts are asked for

Usage: hostile_api.py --listen 127.0.0.1:0 --mode MODE[,MODE] [--alerts N] [--seed S] ...
The first line on standard output is the base URL (http://127.0.0.1:PORT). It serves until
killed. It listens on loopback addresses only.

Test-only endpoints (not under /api or /v1.0):
  GET  /_hostile/info      the options, the foreign listener's URL, counters
  GET  /_hostile/alerts    the current version of every alert, with its evidence markers
  GET  /_hostile/served    every alert version served: id, lastUpdateTime, markers, tenant
  GET  /_hostile/requests  every request to the APIs and the token endpoint
  GET  /_hostile/foreign   every request the 127.0.0.2 listener received
  GET  /_hostile/tokens    every token issued (to look for them in logs)
  POST /_hostile/add       {"new": N, "update": M, "touch": K, "same_time": bool}: N new
                           alerts and M updated ones, stamped with the API's "now" (their
                           incidents move too; a new alert joins an incident or starts one),
                           and K incidents changed alone; same_time: every incident moved
                           gets one lastUpdateDateTime. Answers the versions made
  GET  /_hostile/incidents the current version of every incident (id, lastUpdateDateTime,
                           alerts, alert ids, future)
  GET  /_hostile/incidents_served  every incident version served: id, lastUpdateDateTime,
                           alerts (how many it had), alert_ids, alerts_included, via (list,
                           get), tenant, listener

Standard library only.
"""
import argparse
import base64
import calendar
import hashlib
import ipaddress
import json
import random
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TICKS = 10_000_000  # 100 ns units a second, as .NET's DateTime
FUTURE_TICKS = calendar.timegm((2100, 1, 1, 0, 0, 0)) * TICKS
MODES = {"ignore_orderby", "future", "pretty", "absurd_retry_after", "short_retry_after",
         "foreign_next_link", "revoke_401", "clock_behind", "clock_ahead",
         "no_next_link", "expand_500", "one_instant", "get_500"}
GRAPH_APIS = ("graph", "incidents")
ABSURD = {
    "huge": "99999999999999999999",
    "date9999": "Fri, 31 Dec 9999 23:59:59 GMT",
    "negative": "-30",
    "junk": "soon, maybe; try later",
}
MDE_CONTEXT_PATH = "/api/$metadata#Alerts"
GRAPH_CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2"
INCIDENTS_CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#security/incidents"
INCIDENTS_PATH = "/v1.0/security/incidents"
INCIDENTS_TOP = 50   # Graph refuses more (400), unlike alerts_v2 which clamps at 1000
CLIENT_ID = "00000000-0000-4000-8000-0000000000c1"
SECRET = "Hostile-S3cret~Value.0123456789"


# ---------------------------------------------------------------------------------------
# Time


def render_time(ticks):
    """Ticks since the epoch -> ISO 8601 UTC, fraction of 0-7 digits, trailing zeros trimmed."""
    secs, frac = divmod(ticks, TICKS)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:07d}".rstrip("0")
    return text + ("." + digits if digits else "") + "Z"


ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
                    r"(Z|[+-]\d{2}:\d{2})$")


def parse_time(text):
    """ISO 8601 (Z or an offset, at most 7 fraction digits) -> ticks; ValueError otherwise."""
    m = ISO_RE.match(text)
    if not m:
        raise ValueError(f"not a DateTimeOffset: {text!r}")
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    s = int(m.group(6) or 0)
    frac = m.group(7) or ""
    if len(frac) > 7:
        raise ValueError(f"more than 7 fractional digits: {text!r}")
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
        raise ValueError(f"out of range: {text!r}")
    ticks = calendar.timegm((y, mo, d, h, mi, s)) * TICKS + int((frac + "0000000")[:7])
    tz = m.group(8)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        ticks -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * TICKS
    return ticks


# ---------------------------------------------------------------------------------------
# OData $filter: a small parser of our own


class ODataError(Exception):
    pass


TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<str>'(?:[^']|'')*')
  | (?P<dt>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2}))
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


def tokenize(text):
    pos, out = 0, []
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise ODataError(f"Syntax error at position {pos} in '{text}'.")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        elif kind == "dt":
            try:
                value = parse_time(value)
            except ValueError as e:
                raise ODataError(f"Unrecognized 'Edm.DateTimeOffset' literal: {e}") from None
        elif kind == "num":
            value = float(value) if "." in value else int(value)
        out.append((kind, value))
    return out


class FilterParser:
    """expr := and ('or' and)* ; and := term ('and' term)* ;
    term := '(' expr ')' | 'not' term | property op literal"""

    def __init__(self, text):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        t = self.peek()
        if t[0] is None:
            raise ODataError(f"Syntax error: unexpected end of '{self.text}'.")
        self.i += 1
        return t

    def parse(self):
        node = self.expr()
        if self.i != len(self.toks):
            raise ODataError(f"Syntax error at token {self.peek()[1]!r} in '{self.text}'.")
        return node

    def expr(self):
        node = self.conj()
        while self.peek() == ("word", "or"):
            self.take()
            node = ("or", node, self.conj())
        return node

    def conj(self):
        node = self.term()
        while self.peek() == ("word", "and"):
            self.take()
            node = ("and", node, self.term())
        return node

    def term(self):
        kind, value = self.take()
        if kind == "lp":
            node = self.expr()
            if self.take()[0] != "rp":
                raise ODataError(f"Syntax error: ')' expected in '{self.text}'.")
            return node
        if kind == "word" and value == "not":
            return ("not", self.term())
        if kind != "word":
            raise ODataError(f"Syntax error at {value!r} in '{self.text}'.")
        op_kind, op = self.take()
        if op_kind != "word" or op not in OPS:
            raise ODataError(f"Syntax error: operator expected after '{value}' in '{self.text}'.")
        lit_kind, lit = self.take()
        if lit_kind == "word":
            if lit == "null":
                lit_kind, lit = "null", None
            elif lit in ("true", "false"):
                lit_kind, lit = "bool", lit == "true"
            else:
                raise ODataError(f"Syntax error: a literal expected after '{value} {op}'.")
        elif lit_kind not in ("str", "dt", "num"):
            raise ODataError(f"Syntax error: a literal expected after '{value} {op}'.")
        return ("cmp", value, op, lit_kind, lit)


def compile_filter(text, fields):
    """Parses and type-checks a $filter; `fields` maps property -> (type, getter)."""
    node = FilterParser(text).parse()

    def check(n):
        if n[0] in ("and", "or"):
            check(n[1])
            check(n[2])
        elif n[0] == "not":
            check(n[1])
        else:
            _, prop, op, lit_kind, _ = n
            if prop not in fields:
                raise ODataError(f"Invalid filter clause: Could not find a property named "
                                 f"'{prop}' on the queried type.")
            ftype = fields[prop][0]
            if lit_kind != "null" and {"dt": "dt", "str": "str", "num": "num",
                                       "bool": "bool"}[lit_kind] != ftype:
                names = {"dt": "Edm.DateTimeOffset", "str": "Edm.String", "num": "Edm.Int64",
                         "bool": "Edm.Boolean"}
                raise ODataError(
                    f"A binary operator with incompatible types was detected. Found operand "
                    f"types '{names[ftype]}' and '{names[lit_kind]}' for operator kind '{op}'.")
    check(node)

    def evaluate(n, alert):
        if n[0] == "and":
            return evaluate(n[1], alert) and evaluate(n[2], alert)
        if n[0] == "or":
            return evaluate(n[1], alert) or evaluate(n[2], alert)
        if n[0] == "not":
            return not evaluate(n[1], alert)
        _, prop, op, _, lit = n
        value = fields[prop][1](alert)
        if lit is None or value is None:
            return {"eq": value == lit, "ne": value != lit}.get(op, False)
        return {"eq": value == lit, "ne": value != lit, "gt": value > lit, "ge": value >= lit,
                "lt": value < lit, "le": value <= lit}[op]
    return lambda alert: evaluate(node, alert)


# ---------------------------------------------------------------------------------------
# The alerts


KINDS = ["User", "File", "Process", "Ip", "Url"]
CATEGORIES = ["Execution", "Malware", "DefenseEvasion", "CredentialAccess", "LateralMovement",
              "CommandAndControl", "Persistence", "SuspiciousActivity"]
SEVERITIES = ["Informational", "Low", "Medium", "High", "UnSpecified"]
STATUSES = ["New", "InProgress", "Resolved"]
PRECISIONS = [7, 0, 3, 2, 7, 1, 6, 7, 5]  # fraction digits of the generated times
GRAPH_DETECTION = {"WindowsDefenderAtp": "microsoftDefenderForEndpoint",
                   "WindowsDefenderAv": "antivirus", "CustomDetection": "customDetection",
                   "AutomatedInvestigation": "automatedInvestigation"}


def lower_camel(text):
    return text[:1].lower() + text[1:] if text else text


class World:
    """The alert set. Every alert has one current version; an update replaces it."""

    def __init__(self, rng, now_ticks, count, hours, tie_group, future, tenant_id,
                 sorted_runs=0):
        self.rng = rng
        self.tenant_id = tenant_id
        self.alerts = []
        self.seq = 0
        span = int(hours * 3600 * TICKS)
        newest = now_ticks - 30 * TICKS
        times = [self.coarse(newest - rng.randrange(span), PRECISIONS[i % len(PRECISIONS)])
                 for i in range(count)]
        # Ties: one group larger than a small page shares one time, and every ninth alert
        # shares its neighbour's.
        if count and tie_group > 1:
            shared = times[0]
            for i in range(min(tie_group, count)):
                times[i] = shared
        for i in range(tie_group + 1, count, 9):
            times[i] = times[i - 1]
        if count > tie_group + 2:
            times[-1] = self.coarse(newest, 7)  # one alert half a minute before "now"
        for t in times:
            self.alerts.append(self.make(t))
        for a in self.alerts[:tie_group]:  # the tie group is Defender for Endpoint's
            a["service"] = "microsoftDefenderForEndpoint"
        if sorted_runs > 1:
            # Ids in runs of `sorted_runs` alerts in time order, the runs themselves in no
            # order: a page of that size in id order looks sorted by time, the next page
            # goes back in time.
            by_time = sorted(self.alerts, key=lambda a: a["lut"])
            runs = [by_time[i:i + sorted_runs] for i in range(0, len(by_time), sorted_runs)]
            rng.shuffle(runs)
            ids = sorted(a["id"] for a in self.alerts)
            for a, new_id in zip([a for run in runs for a in run], ids):
                a["id"] = new_id
        for _ in range(future):
            self.alerts.append(self.make(FUTURE_TICKS))

    @staticmethod
    def coarse(ticks, digits):
        step = 10 ** (7 - digits)
        return ticks - ticks % step

    def make(self, lut_ticks, created=None):
        rng, seq = self.rng, self.seq
        self.seq += 1
        if created is None:
            created = min(lut_ticks, int(time.time() * TICKS)) - rng.randrange(2 * 3600 * TICKS)
        detection = rng.choice(["WindowsDefenderAtp", "WindowsDefenderAv", "CustomDetection",
                                "AutomatedInvestigation"])
        n_ev = rng.choice([0, 1, 1, 2, 2, 3])
        evidence = []
        for i in range(n_ev):
            kind = rng.choice(KINDS)
            ev = {"kind": kind, "created": created + i * TICKS}
            if kind == "User":
                ev["value"] = f"user{seq}e{i}"
            elif kind == "File":
                ev["value"] = hashlib.sha256(f"file {seq} {i} {rng.random()}".encode()).hexdigest()
            elif kind == "Process":
                ev["value"] = str(10000 + seq * 10 + i)
            elif kind == "Ip":
                ev["value"] = f"10.{seq // 250 % 250}.{seq % 250}.{i + 1}"
            else:
                ev["value"] = f"https://bad{seq}-{i}.example.com/drop/x{i}.php?id={seq}&k=v#f"
            evidence.append(ev)
        return {
            "seq": seq,
            "id": f"da{rng.randrange(10**17, 10**18)}_{rng.randrange(-2**31, 2**31)}",
            "lut": lut_ticks,
            "created": created,
            "first": created - rng.randrange(600) * TICKS,
            "last": created - rng.randrange(60) * TICKS,
            "incident": rng.randrange(1000, 99999),
            "investigation": rng.choice([None, rng.randrange(1, 9999)]),
            "severity": rng.choice(SEVERITIES),
            "status": rng.choice(STATUSES),
            "category": rng.choice(CATEGORIES),
            "detection": detection,
            "service": ("microsoftDefenderForOffice365" if seq % 17 == 16
                        else "microsoftDefenderForEndpoint"),
            "machine": hashlib.sha1(f"machine {seq % 7}".encode()).hexdigest(),
            "host": f"ws{seq % 7:03d}.contoso.example",
            "user": f"staff{seq % 5}",
            "title": f"Suspicious activity {seq} ({detection})",
            "evidence": evidence,
            "version": 0,
        }

    def add(self, now_ticks, new, update):
        made = []
        for i in range(new):
            a = self.make(self.coarse(now_ticks - self.rng.randrange(TICKS), PRECISIONS[i % 9]))
            self.alerts.append(a)
            made.append(a)
        candidates = [a for a in self.alerts if a["lut"] < FUTURE_TICKS and a not in made]
        for a in self.rng.sample(candidates, min(update, len(candidates))):
            a["lut"] = self.coarse(now_ticks - self.rng.randrange(TICKS), 7)
            a["version"] += 1
            a["status"] = "InProgress" if a["status"] == "New" else "Resolved"
            made.append(a)
        return made


def markers(alert):
    """What identifies each evidence document of an alert (None: no evidence, one document)."""
    return [f"{ev['kind']}:{ev['value']}" for ev in alert["evidence"]]


def evidence_mde(alert, ev):
    keys = ["entityType", "evidenceCreationTime", "sha1", "sha256", "fileName", "filePath",
            "processId", "processCommandLine", "processCreationTime", "parentProcessId",
            "parentProcessCreationTime", "parentProcessFileName", "parentProcessFilePath",
            "ipAddress", "url", "registryKey", "registryHive", "registryValueType",
            "registryValue", "accountName", "domainName", "userSid", "aadUserId",
            "userPrincipalName", "detectionStatus"]
    out = dict.fromkeys(keys)
    kind, value, seq = ev["kind"], ev["value"], alert["seq"]
    out["entityType"] = kind
    out["evidenceCreationTime"] = render_time(ev["created"])
    if kind == "User":
        out.update(accountName=value, domainName="CONTOSO",
                   userSid=f"S-1-5-21-1004336348-1177238915-682003330-{1000 + seq}",
                   aadUserId=str(uuid.UUID(int=seq + 1)),
                   userPrincipalName=f"{value}@contoso.example")
    elif kind == "File":
        out.update(fileName=f"payload{seq}.exe", filePath="C:\\Users\\Public\\Downloads",
                   sha1=value[:40], sha256=value, detectionStatus="Detected")
    elif kind == "Process":
        out.update(processId=int(value), fileName="powershell.exe",
                   filePath="C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
                   processCommandLine=f"powershell.exe -enc SQBFAFgA{seq}",
                   processCreationTime=render_time(ev["created"]),
                   parentProcessId=int(value) - 7,
                   parentProcessCreationTime=render_time(ev["created"] - TICKS),
                   parentProcessFileName="cmd.exe", parentProcessFilePath="C:\\Windows\\System32",
                   detectionStatus="Blocked")
    elif kind == "Ip":
        out["ipAddress"] = value
    else:
        out["url"] = value
    return out


def alert_mde(alert, tenant_id, expand):
    desc = (f"Alert {alert['seq']}: a process did something it should not have.\n"
            "Recommended: investigate the machine timeline.\r\nSecond paragraph \u00e9\u00e8 "
            "with non-ASCII text and \"quotes\".")
    return {
        "id": alert["id"],
        "incidentId": alert["incident"],
        "investigationId": alert["investigation"],
        "assignedTo": None if alert["status"] == "New" else "analyst@contoso.example",
        "severity": alert["severity"],
        "status": alert["status"],
        "classification": None if alert["status"] != "Resolved" else "TruePositive",
        "determination": None if alert["status"] != "Resolved" else "Malware",
        "investigationState": "Queued" if alert["investigation"] else "UnsupportedAlertType",
        "detectionSource": alert["detection"],
        "detectorId": str(uuid.UUID(int=alert["seq"] * 7919 + 13)),
        "category": alert["category"],
        "threatFamilyName": None,
        "threatName": None,
        "title": alert["title"],
        "description": desc,
        "alertCreationTime": render_time(alert["created"]),
        "firstEventTime": render_time(alert["first"]),
        "lastEventTime": render_time(alert["last"]),
        "lastUpdateTime": render_time(alert["lut"]),
        "resolvedTime": render_time(alert["lut"]) if alert["status"] == "Resolved" else None,
        "machineId": alert["machine"],
        "computerDnsName": alert["host"],
        "rbacGroupName": "Servers",
        "aadTenantId": tenant_id,
        "mitreTechniques": ["T1059.001", "T1027"],
        "relatedUser": {"userName": alert["user"], "domainName": "CONTOSO"},
        "comments": [] if alert["seq"] % 3 else [
            {"comment": "looked at it", "createdBy": "analyst@contoso.example",
             "createdTime": render_time(alert["created"])}],
        "evidence": [evidence_mde(alert, ev) for ev in alert["evidence"]] if expand else [],
    }


def graph_common(ev, kind_name):
    return {"@odata.type": f"#microsoft.graph.security.{kind_name}",
            "createdDateTime": render_time(ev["created"]), "verdict": "suspicious",
            "remediationStatus": "none", "remediationStatusDetails": None,
            "roles": [], "detailedRoles": [], "tags": []}


def evidence_graph(alert, ev):
    kind, value, seq = ev["kind"], ev["value"], alert["seq"]
    user = {"accountName": value if kind == "User" else alert["user"], "domainName": "CONTOSO",
            "userSid": f"S-1-5-21-1004336348-1177238915-682003330-{1000 + seq}",
            "azureAdUserId": str(uuid.UUID(int=seq + 1)),
            "userPrincipalName": f"{value}@contoso.example", "displayName": f"User {seq}"}
    if kind == "User":
        out = graph_common(ev, "userEvidence")
        out["userAccount"] = user
    elif kind == "File":
        out = graph_common(ev, "fileEvidence")
        out.update(fileDetails={"fileName": f"payload{seq}.exe",
                                "filePath": "C:\\Users\\Public\\Downloads", "sha1": value[:40],
                                "sha256": value, "md5": value[:32], "fileSize": 1234 + seq,
                                "filePublisher": None, "signer": None, "issuer": None},
                   detectionStatus="detected", mdeDeviceId=alert["machine"])
    elif kind == "Process":
        out = graph_common(ev, "processEvidence")
        image = {"fileName": "powershell.exe",
                 "filePath": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
                 "sha1": "a" * 40, "sha256": "b" * 64, "md5": "c" * 32, "fileSize": 450000,
                 "filePublisher": "Microsoft Corporation", "signer": None, "issuer": None}
        out.update(imageFile=image, processId=int(value),
                   processCommandLine=f"powershell.exe -enc SQBFAFgA{seq}",
                   processCreationDateTime=render_time(ev["created"]),
                   parentProcessId=int(value) - 7,
                   parentProcessCreationDateTime=render_time(ev["created"] - TICKS),
                   parentProcessImageFile={"fileName": "cmd.exe",
                                           "filePath": "C:\\Windows\\System32", "sha1": None,
                                           "sha256": None, "md5": None, "fileSize": 289792,
                                           "filePublisher": None, "signer": None,
                                           "issuer": None},
                   userAccount=user, detectionStatus="blocked", mdeDeviceId=alert["machine"])
    elif kind == "Ip":
        out = graph_common(ev, "ipEvidence")
        out.update(ipAddress=value, countryLetterCode="NL")
    else:
        out = graph_common(ev, "urlEvidence")
        out["url"] = value
    return out


def alert_graph(alert, tenant_id):
    evidence = []
    if alert["evidence"]:
        device = graph_common({"created": alert["created"]}, "deviceEvidence")
        device.update(mdeDeviceId=alert["machine"], deviceDnsName=alert["host"],
                      rbacGroupName="Servers", rbacGroupId=4, osPlatform="Windows10",
                      osBuild=19045, version="22H2",
                      loggedOnUsers=[{"accountName": alert["user"], "domainName": "CONTOSO"}],
                      ipInterfaces=["10.1.2.3"], healthStatus="active", riskScore="medium",
                      defenderAvStatus="updated", onboardingStatus="onboarded",
                      azureAdDeviceId=str(uuid.UUID(int=alert["seq"] + 99)),
                      firstSeenDateTime=render_time(alert["created"] - 86400 * TICKS),
                      vmMetadata=None)
        evidence.append(device)
    evidence += [evidence_graph(alert, ev) for ev in alert["evidence"]]
    status = {"New": "new", "InProgress": "inProgress", "Resolved": "resolved"}[alert["status"]]
    severity = "unknown" if alert["severity"] == "UnSpecified" else alert["severity"].lower()
    return {
        "id": alert["id"],
        "providerAlertId": alert["id"][2:],
        "incidentId": str(alert["incident"]),
        "status": status,
        "severity": severity,
        "classification": "truePositive" if status == "resolved" else None,
        "determination": "malware" if status == "resolved" else None,
        "serviceSource": alert["service"],
        "detectionSource": GRAPH_DETECTION[alert["detection"]],
        "productName": "Microsoft Defender for Endpoint",
        "detectorId": str(uuid.UUID(int=alert["seq"] * 7919 + 13)),
        "tenantId": tenant_id,
        "title": alert["title"],
        "description": f"Alert {alert['seq']}: a process did something.\nInvestigate it.",
        "recommendedActions": "Isolate the device.",
        "category": alert["category"],
        "assignedTo": None if status == "new" else "analyst@contoso.example",
        "alertWebUrl": f"https://security.microsoft.com/alerts/{alert['id']}",
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{alert['incident']}",
        "actorDisplayName": None,
        "threatDisplayName": None,
        "threatFamilyName": None,
        "mitreTechniques": ["T1059.001"],
        "createdDateTime": render_time(alert["created"]),
        "lastUpdateDateTime": render_time(alert["lut"]),
        "resolvedDateTime": render_time(alert["lut"]) if status == "resolved" else None,
        "firstActivityDateTime": render_time(alert["first"]),
        "lastActivityDateTime": render_time(alert["last"]),
        "systemTags": [],
        "alertPolicyId": None,
        "additionalData": {},
        "comments": [],
        "evidence": evidence,
    }


# ---------------------------------------------------------------------------------------
# Incidents: the alerts grouped here (not as any emulator does it)


INCIDENT_STATUS = {"New": "active", "InProgress": "inProgress", "Resolved": "resolved"}
SEVERITY_RANK = ["unknown", "informational", "low", "medium", "high"]


class Incidents:
    """Every alert belongs to one incident; an incident has 0..n alerts, and one current
    version (id, lastUpdateDateTime). Its lastUpdateDateTime moves whenever it or one of
    its alerts changes, never backwards, and never stays put on a change."""

    def __init__(self, world, seed, burst, big, burst_time="within"):
        self.world = world
        self.rng = random.Random(seed * 7919 + 17)  # apart from the alerts' generator
        self.items = []
        self.by_id = {}
        self.next_num = 1001
        rng = self.rng
        normal = [a for a in world.alerts if a["lut"] < FUTURE_TICKS]
        future = [a for a in world.alerts if a["lut"] >= FUTURE_TICKS]
        pool = sorted(normal, key=lambda a: (a["created"], a["seq"]))
        earliest = min([a["created"] for a in pool], default=int(time.time() * TICKS))
        groups = []  # (alerts, forced lut, forced created)
        if burst:
            # One instant shared by `burst` incidents with the lowest ids and the earliest
            # creation times: a page of them, in any order asked, is one instant.
            members = []
            for i in range(burst):
                members.append([pool.pop(0)] if pool and i % 7 != 6 else [])
            shared = max([a["lut"] for m in members for a in m], default=earliest)
            for i, m in enumerate(members):
                groups.append((m, shared, earliest - (burst - i) * TICKS))
        rest = []
        if big and len(pool) >= big:
            # One incident with many alerts (the one $expand fails on in expand_500).
            chosen = rng.sample(pool, big)
            pool = [a for a in pool if a not in chosen]
            rest.append(chosen)
        rng.shuffle(pool)
        while pool:
            n = min(len(pool), rng.choice([1, 1, 2, 2, 3, 4]))
            rest.append(pool[:n])
            pool = pool[n:]
        rest.append([])  # an incident without alerts
        # The others get ids in no relation to their times.
        rng.shuffle(rest)
        groups += [(m, None, None) for m in rest]
        for a in future:  # each 2100 alert an incident of its own, stamped 2100
            groups.append(([a], FUTURE_TICKS, None))
        for members, lut, created in groups:
            self.make(members, lut, created)
        if burst and burst_time == "oldest":
            # Every other incident changed after the burst's instant (0.1 ms apart).
            shared = self.items[0]["lut"]
            later = sorted((i for i in self.items[burst:] if i["lut"] <= shared),
                           key=lambda i: i["num"])
            for k, inc in enumerate(later):
                inc["lut"] = shared + (k + 1) * (TICKS // 10000)

    def make(self, members, lut=None, created=None):
        num = self.next_num
        self.next_num += 1 + self.rng.randrange(3)
        now = int(time.time() * TICKS)
        if created is None:
            created = min([a["created"] for a in members],
                          default=now - self.rng.randrange(3600) * TICKS)
        if lut is None:
            lut = max([a["lut"] for a in members], default=created)
        inc = {"num": num, "id": str(num), "created": created, "lut": lut, "alerts": [],
               "status": self.rng.choice(["active", "active", "inProgress"]),
               "assigned": None, "version": 0, "tags": self.rng.choice([[], ["hostile"]])}
        for a in members:
            a["incident"] = num
            inc["alerts"].append(a)
        self.items.append(inc)
        self.by_id[inc["id"]] = inc
        return inc

    def of(self, alert):
        return self.by_id.get(str(alert["incident"]))

    def move(self, inc, now_ticks):
        """A change: a new lastUpdateDateTime (now, 7 digits; after the one it had)."""
        inc["lut"] = max(self.world.coarse(now_ticks, 7), inc["lut"] + 1)
        inc["version"] += 1

    def add(self, now_ticks, made, new_ids, touch, same_time):
        """After World.add made `made` (new alerts: `new_ids`): their incidents move; new
        alerts join an incident (half of them) or start one. Then `touch` incidents change
        alone (assignment, status). Returns the incidents moved."""
        moved = []
        candidates = [i for i in self.items if i["lut"] < FUTURE_TICKS]
        for a in made:
            if a["id"] in new_ids:
                if candidates and self.rng.random() < 0.5:
                    inc = self.rng.choice(candidates)
                    a["incident"] = inc["num"]
                    inc["alerts"].append(a)
                else:
                    inc = self.make([a], lut=0)
                    candidates.append(inc)
            else:
                inc = self.of(a)
            if inc is not None and inc not in moved:
                moved.append(inc)
        rest = [i for i in candidates if i not in moved]
        for inc in self.rng.sample(rest, min(touch, len(rest))):
            inc["assigned"] = "soc@contoso.example"
            inc["status"] = "inProgress" if inc["status"] == "active" else "resolved"
            moved.append(inc)
        if same_time:
            t = max([self.world.coarse(now_ticks, 7)] + [i["lut"] + 1 for i in moved])
            for inc in moved:
                inc["lut"] = t
                inc["version"] += 1
        else:
            for inc in moved:
                self.move(inc, now_ticks)
        return moved


def incident_severity(inc):
    ranks = [SEVERITY_RANK.index("unknown" if a["severity"] == "UnSpecified"
                                 else a["severity"].lower()) for a in inc["alerts"]]
    return SEVERITY_RANK[max(ranks)] if ranks else "informational"


def incident_graph(inc, tenant_id, expand):
    status = inc["status"]
    out = {}
    if inc["num"] % 3 == 0:
        out["@odata.type"] = "#microsoft.graph.security.incident"
    out.update({
        "id": inc["id"],
        "tenantId": tenant_id,
        "status": status,
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{inc['id']}?tid={tenant_id}",
        "redirectIncidentId": None,
        "displayName": f"Multi-stage incident {inc['id']} involving {len(inc['alerts'])} "
                       f"alerts on one endpoint",
        "description": "Incident \u00e9\u00e8 with \"quotes\"\nand a second line.",
        "createdDateTime": render_time(inc["created"]),
        "lastUpdateDateTime": render_time(inc["lut"]),
        "assignedTo": inc["assigned"],
        "classification": "truePositive" if status == "resolved" else "unknown",
        "determination": "malware" if status == "resolved" else "unknown",
        "severity": incident_severity(inc),
        "customTags": inc["tags"],
        "systemTags": [],
        "comments": [] if inc["num"] % 4 else [
            {"comment": "triaged", "createdBy": "soc@contoso.example",
             "createdByDisplayName": "SOC", "createdTime": render_time(inc["created"])}],
    })
    if expand:
        out["alerts"] = [alert_graph(a, tenant_id) for a in inc["alerts"]]
    return out


def incident_fields():
    return {
        "lastUpdateDateTime": ("dt", lambda i: i["lut"]),
        "createdDateTime": ("dt", lambda i: i["created"]),
        "status": ("str", lambda i: i["status"]),
        "severity": ("str", incident_severity),
        "assignedTo": ("str", lambda i: i["assigned"]),
        "classification": ("str", lambda i: "truePositive" if i["status"] == "resolved"
                           else "unknown"),
        "determination": ("str", lambda i: "malware" if i["status"] == "resolved"
                          else "unknown"),
    }


def assigned(a):
    return None if a["status"] == "New" else "analyst@contoso.example"


def mde_fields():
    return {
        "lastUpdateTime": ("dt", lambda a: a["lut"]),
        "alertCreationTime": ("dt", lambda a: a["created"]),
        "lastEventTime": ("dt", lambda a: a["last"]),
        "status": ("str", lambda a: a["status"]),
        "severity": ("str", lambda a: a["severity"]),
        "category": ("str", lambda a: a["category"]),
        "id": ("str", lambda a: a["id"]),
        "incidentId": ("num", lambda a: a["incident"]),
        "investigationId": ("num", lambda a: a["investigation"]),
        "detectionSource": ("str", lambda a: a["detection"]),
        "assignedTo": ("str", assigned),
    }


def graph_fields():
    return {
        "lastUpdateDateTime": ("dt", lambda a: a["lut"]),
        "createdDateTime": ("dt", lambda a: a["created"]),
        "status": ("str", lambda a: lower_camel(a["status"])),
        "severity": ("str", lambda a: "unknown" if a["severity"] == "UnSpecified"
                     else a["severity"].lower()),
        "serviceSource": ("str", lambda a: a["service"]),
        "classification": ("str", lambda a: "truePositive" if a["status"] == "Resolved" else None),
        "determination": ("str", lambda a: "malware" if a["status"] == "Resolved" else None),
        "assignedTo": ("str", assigned),
        "id": ("str", lambda a: a["id"]),
        "incidentId": ("str", lambda a: str(a["incident"])),
    }


# ---------------------------------------------------------------------------------------
# The server


class Hostile:
    def __init__(self, opts):
        self.opts = opts
        self.modes = set(opts.mode)
        self.lock = threading.Lock()
        self.skew = 0.0
        if "clock_behind" in self.modes:
            self.skew = -abs(opts.clock_skew)
        if "clock_ahead" in self.modes:
            self.skew = abs(opts.clock_skew)
        self.rng = random.Random(opts.seed)
        self.world = World(self.rng, self.now_ticks(), opts.alerts, opts.hours, opts.tie_group,
                           opts.future if "future" in self.modes else 0, opts.tenant_id,
                           opts.sorted_runs)
        self.incidents = Incidents(self.world, opts.seed,
                                   opts.incident_burst if "one_instant" in self.modes else 0,
                                   opts.big_incident, opts.burst_time)
        self.incidents_served = []  # every incident version served
        self.tokens = {}        # token -> {tenant, audience, revoked, issued}
        self.requests = []      # every request to the token endpoint and the APIs
        self.served = []        # every alert version served
        self.foreign_requests = []
        self.cursors = {}       # Graph $skiptoken -> query state
        self.per_tenant = {}    # throttling state per tenant
        self.api_requests = 0
        self.revocations = 0
        self.counters = {"throttled": 0, "early_retries": 0, "unsorted_pages": 0,
                         "foreign_links": 0, "unauthorized": 0, "bad_requests": 0,
                         "orderby_ignored": 0, "unordered_results": 0,
                         "expand_500": 0, "incident_pages": 0, "one_instant_pages": 0,
                         "full_pages_without_next_link": 0, "incident_gets": 0,
                         "changed_before_get": 0, "get_500": 0}
        self.base_url = ""
        self.foreign_url = ""
        self.retry_for = {}
        for item in opts.retry_after_for:
            tenant, _, kind = item.partition("=")
            self.retry_for[tenant] = ABSURD.get(kind, kind)

    def now(self):
        """The API's clock (seconds)."""
        return time.time() + self.skew

    def now_ticks(self):
        return int(self.now() * TICKS)

    def dumps(self, obj):
        if "pretty" in self.modes:
            return json.dumps(obj, indent=2, ensure_ascii=False)
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def mde_error(code, message):
    return {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}


def graph_error(code, message, now):
    return {"error": {"code": code, "message": message, "innerError": {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
        "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}}}


def aad_error(state, status, error, code, text):
    now = state.now()
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(now))
    return status, {
        "error": error,
        "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: "
                             f"{corr}\r\nTimestamp: {stamp}",
        "error_codes": [code], "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}"}


def make_token(rng):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b64(json.dumps({"typ": "JWT", "alg": "RS256", "kid": "hostile"}).encode())
    payload = b64(json.dumps({"aud": "hostile", "nonce": secrets.token_hex(16)}).encode())
    return f"{header}.{payload}.{b64(secrets.token_bytes(48))}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    foreign = False  # set on the 127.0.0.2 listener's handler class

    def log_message(self, fmt, *args):  # quiet
        pass

    def version_string(self):
        return self.server_version

    def date_time_string(self, timestamp=None):
        state = self.server.state
        return time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                             time.gmtime(state.now() if timestamp is None else timestamp))

    # -- plumbing ------------------------------------------------------------------------

    def send_body(self, status, body, headers=None, content_type=None):
        state = self.server.state
        data = (body if isinstance(body, str) else state.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type or
                         "application/json; odata.metadata=minimal; odata.streaming=true; "
                         "IEEE754Compatible=false; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def split(self):
        parts = urllib.parse.urlsplit(self.path)
        return parts.path, parts.query

    def record(self, **extra):
        state = self.server.state
        path, query = self.split()
        entry = {"t": time.time(), "api_time": state.now(), "method": self.command, "path": path,
                 "query": query,
                 "params": dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
                 "host": self.headers.get("Host"),
                 "local": "%s:%d" % self.server.server_address[:2],
                 "user_agent": self.headers.get("User-Agent")}
        entry.update(extra)
        return entry

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def dispatch(self):
        try:
            if self.foreign:
                return self.on_foreign()
            path, _ = self.split()
            if path.startswith("/_hostile/"):
                return self.on_test(path)
            if path.endswith("/oauth2/token") or path.endswith("/oauth2/v2.0/token"):
                return self.on_token(path)
            if path in ("/api/alerts", "/api/v1.0/alerts"):
                return self.on_api("mde")
            if path == "/v1.0/security/alerts_v2":
                return self.on_api("graph")
            if path == INCIDENTS_PATH or path.startswith(INCIDENTS_PATH + "/"):
                return self.on_api("incidents")
            self.send_body(404, mde_error("ResourceNotFound", f"No route for {path}"))
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- test endpoints --------------------------------------------------------------------

    def on_test(self, path):
        state = self.server.state
        with state.lock:
            if path == "/_hostile/info":
                body = {"modes": sorted(state.modes), "url": state.base_url,
                        "foreign_url": state.foreign_url, "skew_seconds": state.skew,
                        "alerts": len(state.world.alerts), "api_requests": state.api_requests,
                        "incidents": len(state.incidents.items),
                        "revocations": state.revocations, "counters": state.counters,
                        "client_id": state.opts.client_id, "now": render_time(state.now_ticks())}
            elif path == "/_hostile/alerts":
                body = {"alerts": [{"id": a["id"], "lastUpdateTime": render_time(a["lut"]),
                                    "graphLastUpdateDateTime": render_time(a["lut"]),
                                    "serviceSource": a["service"], "markers": markers(a),
                                    "future": a["lut"] >= FUTURE_TICKS}
                                   for a in state.world.alerts]}
            elif path == "/_hostile/served":
                body = {"served": state.served}
            elif path == "/_hostile/requests":
                body = {"requests": state.requests}
            elif path == "/_hostile/foreign":
                body = {"url": state.foreign_url, "requests": state.foreign_requests}
            elif path == "/_hostile/tokens":
                body = {"tokens": [{"token": t, **v} for t, v in state.tokens.items()]}
            elif path == "/_hostile/incidents":
                body = {"incidents": [incident_truth(i) for i in state.incidents.items]}
            elif path == "/_hostile/incidents_served":
                body = {"served": state.incidents_served}
            elif path == "/_hostile/add" and self.command == "POST":
                req = json.loads(self.read_body() or b"{}")
                now = state.now_ticks()
                made = state.world.add(now, int(req.get("new", 0)), int(req.get("update", 0)))
                new_ids = {a["id"] for a in made[:int(req.get("new", 0))]}
                moved = state.incidents.add(now, made, new_ids, int(req.get("touch", 0)),
                                            bool(req.get("same_time")))
                body = {"added": [{"id": a["id"], "lastUpdateTime": render_time(a["lut"]),
                                   "markers": markers(a)} for a in made],
                        "incidents": [incident_truth(i) for i in moved]}
            else:
                body = None
        if body is None:
            return self.send_body(404, {"error": "unknown test endpoint"})
        # The test endpoints always answer compact JSON.
        data = json.dumps(body, separators=(",", ":"))
        self.send_body(200, data, content_type="application/json")

    # -- token endpoint ----------------------------------------------------------------------

    def on_token(self, path):
        state = self.server.state
        v2 = path.endswith("/v2.0/token")
        tenant = path.split("/")[1] if path.count("/") >= 3 else ""
        form = dict(urllib.parse.parse_qsl(self.read_body().decode("utf-8", "replace"),
                                           keep_blank_values=True))
        with state.lock:
            entry = self.record(kind="token", tenant=tenant, v2=v2,
                                secret_ok=form.get("client_secret") == state.opts.secret)
            status, body = self.token_answer(state, tenant, v2, form)
            entry["status"] = status
            state.requests.append(entry)
        self.send_body(status, body, content_type="application/json; charset=utf-8",
                       headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def token_answer(self, state, tenant, v2, form):
        if self.command != "POST":
            return aad_error(state, 400, "invalid_request", 900561,
                             "The endpoint only accepts POST requests.")
        if not tenant:
            return aad_error(state, 400, "invalid_request", 900023,
                             "Specified tenant identifier is neither a valid DNS name, nor a "
                             "valid external domain.")
        if form.get("grant_type") != "client_credentials":
            return aad_error(state, 400, "unsupported_grant_type", 70003,
                             "The app requested an unsupported grant type.")
        if form.get("client_id") != state.opts.client_id:
            return aad_error(state, 400, "unauthorized_client", 700016,
                             f"Application with identifier '{form.get('client_id')}' was not "
                             f"found in the directory '{tenant}'.")
        if "client_secret" not in form:
            return aad_error(state, 400, "invalid_request", 7000216,
                             "'client_assertion', 'client_secret' or 'request' is required "
                             "for the 'client_credentials' grant type.")
        if form["client_secret"] != state.opts.secret:
            return aad_error(state, 401, "invalid_client", 7000215,
                             "Invalid client secret provided. Ensure the secret being sent in "
                             "the request is the client secret value, not the client secret "
                             f"ID, for a secret added to app '{state.opts.client_id}'.")
        if v2:
            scope = form.get("scope", "")
            if not scope or not all(s.endswith("/.default") for s in scope.split()):
                return aad_error(state, 400, "invalid_scope", 70011,
                                 f"The provided request must include a 'scope' input parameter. "
                                 f"The provided value for the input parameter 'scope' is not "
                                 f"valid: '{scope}'.")
            audience = scope.split()[0][:-len("/.default")]
        else:
            audience = form.get("resource", "")
            if not audience:
                return aad_error(state, 400, "invalid_request", 900144,
                                 "The request body must contain the following parameter: "
                                 "'resource'.")
        token = make_token(state.rng)
        now = int(state.now())
        state.tokens[token] = {"tenant": tenant, "audience": audience, "revoked": False,
                               "issued": time.time(), "v2": v2}
        if v2:
            return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                         "access_token": token}
        return 200, {"token_type": "Bearer", "expires_in": "3599", "ext_expires_in": "3599",
                     "expires_on": str(now + 3599), "not_before": str(now),
                     "resource": audience, "access_token": token}

    # -- the APIs ----------------------------------------------------------------------------

    def on_api(self, api):
        state = self.server.state
        with state.lock:
            status, body, headers, entry = self.api_answer(state, api)
            state.requests.append(entry)
        self.send_body(status, body, headers=headers)

    def auth_state(self, state):
        auth = self.headers.get("Authorization")
        if not auth:
            return "missing", None
        scheme, _, token = auth.partition(" ")
        info = state.tokens.get(token.strip())
        if scheme.lower() != "bearer" or info is None:
            return "invalid", None
        if info["revoked"]:
            return "revoked", info
        return "valid", info

    def api_answer(self, state, api):
        auth, info = self.auth_state(state)
        tenant = info["tenant"] if info else None
        entry = self.record(kind=api, auth=auth, tenant=tenant,
                            prefer=self.headers.get("Prefer"))

        def error(status, code, message, headers=None):
            entry["status"] = status
            entry["error"] = code
            body = (graph_error(code, message, state.now()) if api in GRAPH_APIS
                    else mde_error(code, message))
            return status, body, headers or {}, entry

        if auth != "valid":
            state.counters["unauthorized"] += 1
            if api in GRAPH_APIS:
                return error(401, "InvalidAuthenticationToken",
                             "Access token has expired or is not yet valid." if auth == "revoked"
                             else "Access token is empty." if auth == "missing"
                             else "IDX14100: JWT is not well formed.",
                             {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})
            return error(401, "Unauthorized", "Authorization has been denied for this request.",
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        state.api_requests += 1
        entry["api_seq"] = state.api_requests

        # Throttling.
        throttled = self.throttle(state, tenant, entry)
        if throttled is not None:
            state.counters["throttled"] += 1
            entry["retry_after"] = throttled
            return error(429, "TooManyRequests",
                         "Rate limit is exceeded. Try again later.", {"Retry-After": throttled})

        # Revocation after N requests: this one is served, the tokens die afterwards.
        if "revoke_401" in state.modes and state.revocations < state.opts.revoke_times \
                and state.api_requests >= state.opts.revoke_after * (state.revocations + 1):
            for t in state.tokens.values():
                t["revoked"] = True
            state.revocations += 1
            entry["revoked_tokens_after"] = True

        try:
            status, body = self.page(state, api, entry, tenant)
        except ODataError as e:
            state.counters["bad_requests"] += 1
            return error(400, "BadRequest" if api in GRAPH_APIS else "ODataError", str(e))
        entry["status"] = status
        return status, body, {}, entry

    def throttle(self, state, tenant, entry):
        """The Retry-After to answer with, or None to serve."""
        t = time.time()
        ts = state.per_tenant.setdefault(tenant, {"n": 0, "not_before": None, "last_429": None,
                                                  "was_429": False})
        ts["n"] += 1
        if ts["last_429"] is not None:
            entry["since_last_429"] = round(t - ts["last_429"], 3)
        if "absurd_retry_after" in state.modes:
            if ts["n"] == 1:
                ts["last_429"] = t
                return state.retry_for.get(tenant, ABSURD["huge"])
            return None
        if "short_retry_after" in state.modes:
            if ts["not_before"] is not None and t < ts["not_before"] - 0.05:
                # Retried before Retry-After passed: counted, and throttled again.
                state.counters["early_retries"] += 1
                entry["early"] = True
                ts["last_429"] = t
                return str(max(1, int(ts["not_before"] - t + 0.999)))
            if ts["was_429"]:
                ts["was_429"] = False
                ts["not_before"] = None
                return None
            if ts["n"] in (2, 4) or (ts["n"] > 4 and ts["n"] % state.opts.throttle_every == 0):
                ts["was_429"] = True
                ts["last_429"] = t
                ts["throttles"] = ts.get("throttles", 0) + 1
                if ts["throttles"] % 2:
                    ts["not_before"] = t + 1
                    return "1"
                # An HTTP-date two seconds ahead on the API's clock (whole seconds).
                when = int(state.now()) + 2
                ts["not_before"] = when - state.skew
                return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when))
        return None

    def page(self, state, api, entry, tenant, cursor_from_foreign=False):
        """Builds one page. Returns (status, body)."""
        if api == "incidents":
            return self.incidents_page(state, entry, tenant, cursor_from_foreign)
        path, query = self.split()
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        names = [k for k, _ in pairs]
        dup = {k for k in names if names.count(k) > 1}
        if dup:
            raise ODataError(f"Query option '{sorted(dup)[0]}' was specified more than once.")
        params = dict(pairs)
        graph = api == "graph"
        allowed = {"$filter", "$top", "$skip", "$orderby", "$expand", "$select", "$count",
                   "$skiptoken"}
        for k in params:
            if k.startswith("$") and k not in allowed:
                raise ODataError(f"The query parameter '{k}' is not supported.")
        if "$skiptoken" in params:
            cursor = state.cursors.get(params["$skiptoken"])
            if cursor is None or cursor["api"] != api:
                raise ODataError("The $skiptoken is not valid.")
            return self.render_page(state, api, entry, cursor, tenant)
        if cursor_from_foreign:
            raise ODataError("no cursor")
        fields = graph_fields() if graph else mde_fields()
        flt = params.get("$filter")
        predicate = compile_filter(flt, fields) if flt else (lambda a: True)
        try:
            top = int(params["$top"]) if "$top" in params else (100 if graph else 10000)
            skip = int(params.get("$skip", "0"))
        except ValueError:
            raise ODataError("$top and $skip must be integers.") from None
        if top < 0 or skip < 0:
            raise ODataError("$top and $skip must not be negative.")
        if graph:
            top = min(top, 1000)
            if skip > 500:
                raise ODataError("$skip is limited to 500.")
        elif top > 10000:
            raise ODataError("The limit of '10000' for Top query has been exceeded.")
        order = None
        if "$orderby" in params:
            m = re.fullmatch(r"\s*(\w+)(?:\s+(asc|desc))?\s*", params["$orderby"])
            known = ("lastUpdateDateTime", "createdDateTime") if graph else \
                ("lastUpdateTime", "alertCreationTime", "lastEventTime")
            if not m or m.group(1) not in known:
                raise ODataError(f"Invalid $orderby: '{params['$orderby']}'.")
            order = (m.group(1), m.group(2) == "desc")
        expand = params.get("$expand", "")
        if not graph and expand and expand != "evidence":
            raise ODataError(f"Could not find a property named '{expand}' to expand.")
        cursor = {"api": api, "predicate": predicate, "order": order, "top": top,
                  "offset": skip, "expand": graph or expand == "evidence",
                  "count": params.get("$count") == "true"}
        return self.render_page(state, api, entry, cursor, tenant)

    def render_page(self, state, api, entry, cursor, tenant):
        graph = api == "graph"
        matches = [a for a in state.world.alerts if cursor["predicate"](a)]
        order = cursor["order"]
        if order is not None and "ignore_orderby" not in state.modes:
            key = "created" if order[0] in ("createdDateTime", "alertCreationTime") else \
                "last" if order[0] == "lastEventTime" else "lut"
            matches.sort(key=lambda a: a["id"])
            matches.sort(key=lambda a: a[key], reverse=order[1])
            entry["order"] = "honoured"
        else:
            matches.sort(key=lambda a: a["id"])
            entry["order"] = "by id"
            luts = [a["lut"] for a in matches]
            if order is not None and luts != sorted(luts):
                state.counters["orderby_ignored"] += 1  # and it made a difference
        if [a["lut"] for a in matches] != sorted(a["lut"] for a in matches):
            state.counters["unordered_results"] += 1  # results not in time order
        start, top = cursor["offset"], cursor["top"]
        page = matches[start:start + top]
        luts = [a["lut"] for a in page]
        if luts != sorted(luts):
            state.counters["unsorted_pages"] += 1
            entry["unsorted"] = True
        base = state.base_url
        if graph:
            body = {"@odata.context": GRAPH_CONTEXT}
            if cursor["count"]:
                body["@odata.count"] = len(matches)
            body["value"] = [alert_graph(a, state.opts.tenant_id) for a in page]
        else:
            body = {"@odata.context": base + MDE_CONTEXT_PATH,
                    "value": [alert_mde(a, state.opts.tenant_id, cursor["expand"]) for a in page]}
        # A next page: always for Graph when more may follow (also after an exactly full
        # last page, as Graph does); for the Defender API only in foreign_next_link mode.
        full = top > 0 and len(page) == top
        if full and (graph or "foreign_next_link" in state.modes):
            token = secrets.token_urlsafe(18)
            state.cursors[token] = dict(cursor, offset=start + top)
            host = state.foreign_url if "foreign_next_link" in state.modes else base
            if "foreign_next_link" in state.modes:
                state.counters["foreign_links"] += 1
                entry["foreign_next_link"] = True
            path = "/v1.0/security/alerts_v2" if graph else "/api/alerts"
            body_link = f"{host}{path}?$top={top}&$skiptoken={token}"
            if graph:
                body["@odata.nextLink"] = body_link
            else:
                body = {"@odata.context": body["@odata.context"], "value": body["value"],
                        "@odata.nextLink": body_link}
            entry["next_link"] = body_link
        entry["served"] = len(page)
        entry["served_ids"] = [a["id"] for a in page]
        for a in page:
            state.served.append({"id": a["id"], "lastUpdateTime": render_time(a["lut"]),
                                 "markers": markers(a) if cursor["expand"] else [],
                                 "expanded": cursor["expand"], "api": api, "tenant": tenant,
                                 "service": a["service"], "request": len(state.requests),
                                 "listener": entry["local"]})
        return 200, body

    # -- the foreign listener (127.0.0.2) ---------------------------------------------------

    def on_foreign(self):
        state = self.server.state
        path, _ = self.split()
        with state.lock:
            entry = self.record(kind="foreign", authorization=self.headers.get("Authorization"),
                                headers=dict(self.headers.items()))
            state.foreign_requests.append(entry)
            if not entry["authorization"]:
                # What a host fishing for tokens answers: ask for one.
                status, body, headers = 401, mde_error("Unauthorized", "Bearer token required"), \
                    {"WWW-Authenticate": 'Bearer realm="api"'}
            else:
                api = ("incidents" if path.startswith(INCIDENTS_PATH) else
                       "graph" if path.startswith("/v1.0/") else "mde")
                auth, info = self.auth_state(state)
                try:
                    status, body = self.page(state, api, entry, info["tenant"] if info else None,
                                             cursor_from_foreign=True)
                except ODataError as e:
                    status, body = 400, mde_error("BadRequest", str(e))
                headers = {}
            entry["status"] = status
        self.send_body(status, body, headers=headers)


    # -- Graph security incidents --------------------------------------------------------------

    def incidents_page(self, state, entry, tenant, cursor_from_foreign=False):
        """GET /v1.0/security/incidents[/{id}]. Returns (status, body)."""
        path, query = self.split()
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        names = [k for k, _ in pairs]
        dup = {k for k in names if names.count(k) > 1}
        if dup:
            raise ODataError(f"Query option '{sorted(dup)[0]}' was specified more than once.")
        params = dict(pairs)
        allowed = {"$filter", "$top", "$skip", "$orderby", "$expand", "$select", "$count",
                   "$skiptoken"}
        for k in params:
            if k.startswith("$") and k not in allowed:
                raise ODataError(f"The query parameter '{k}' is not supported.")
        expand = params.get("$expand", "")
        if expand not in ("", "alerts"):
            raise ODataError(f"Could not find a property named '{expand}' on type "
                             f"'microsoft.graph.security.incident'.")
        if path != INCIDENTS_PATH:
            one = urllib.parse.unquote(path[len(INCIDENTS_PATH) + 1:])
            inc = state.incidents.by_id.get(one)
            state.counters["incident_gets"] += 1
            if inc is None or cursor_from_foreign:
                entry["error"] = "NotFound"
                return 404, graph_error("NotFound", f"Incident '{one}' was not found.",
                                        state.now())
            if "get_500" in state.modes and len(inc["alerts"]) > state.opts.expand_fail_above:
                state.counters["get_500"] += 1
                entry["get_500"] = True
                return 500, graph_error("InternalServerError",
                                        "An internal server error occurred.", state.now())
            if state.counters["changed_before_get"] < state.opts.change_before_get \
                    and inc["lut"] < FUTURE_TICKS:
                state.counters["changed_before_get"] += 1
                state.incidents.move(inc, state.now_ticks())
                entry["changed_before_get"] = True
            body = {"@odata.context": INCIDENTS_CONTEXT + "/$entity"}
            body.update(incident_graph(inc, state.opts.tenant_id, expand == "alerts"))
            self.record_incidents(state, entry, tenant, [inc], expand == "alerts", "get")
            return 200, body
        if "$skiptoken" in params:
            cursor = state.cursors.get(params["$skiptoken"])
            if cursor is None or cursor["api"] != "incidents":
                raise ODataError("The $skiptoken is not valid.")
            return self.render_incidents(state, entry, cursor, tenant)
        if cursor_from_foreign:
            raise ODataError("no cursor")
        flt = params.get("$filter")
        predicate = compile_filter(flt, incident_fields()) if flt else (lambda i: True)
        try:
            top = int(params["$top"]) if "$top" in params else INCIDENTS_TOP
            skip = int(params.get("$skip", "0"))
        except ValueError:
            raise ODataError("$top and $skip must be integers.") from None
        if top < 0 or skip < 0:
            raise ODataError("$top and $skip must not be negative.")
        if top > INCIDENTS_TOP:
            raise ODataError(f"The limit of '{INCIDENTS_TOP}' for Top query has been exceeded. "
                             f"The value from the incoming request is '{top}'.")
        if skip > 500:
            raise ODataError("The limit of '500' for Skip query has been exceeded. The value "
                             f"from the incoming request is '{skip}'.")
        order = None
        if "$orderby" in params:
            m = re.fullmatch(r"\s*(\w+)(?:\s+(asc|desc))?\s*", params["$orderby"])
            if not m or m.group(1) not in ("lastUpdateDateTime", "createdDateTime"):
                raise ODataError(f"Invalid $orderby: '{params['$orderby']}'.")
            order = (m.group(1), m.group(2) == "desc")
        cursor = {"api": "incidents", "predicate": predicate, "order": order, "top": top,
                  "offset": skip, "expand": expand == "alerts",
                  "count": params.get("$count") == "true"}
        return self.render_incidents(state, entry, cursor, tenant)

    def render_incidents(self, state, entry, cursor, tenant):
        matches = [i for i in state.incidents.items if cursor["predicate"](i)]
        order = cursor["order"]
        if order is not None and "ignore_orderby" not in state.modes:
            key = "created" if order[0] == "createdDateTime" else "lut"
            matches.sort(key=lambda i: i["num"])
            matches.sort(key=lambda i: i[key], reverse=order[1])
            entry["order"] = "honoured"
        else:
            matches.sort(key=lambda i: i["num"])
            entry["order"] = "by id"
            if order is not None:
                key = "created" if order[0] == "createdDateTime" else "lut"
                if [i[key] for i in matches] != sorted(i[key] for i in matches):
                    state.counters["orderby_ignored"] += 1  # and it made a difference
        start, top = cursor["offset"], cursor["top"]
        page = matches[start:start + top]
        state.counters["incident_pages"] += 1
        if cursor["expand"] and "expand_500" in state.modes:
            big = [i["id"] for i in page if len(i["alerts"]) > state.opts.expand_fail_above]
            if big:
                state.counters["expand_500"] += 1
                entry["expand_500"] = big
                return 500, graph_error("InternalServerError",
                                        "An internal server error occurred.", state.now())
        luts = [i["lut"] for i in page]
        if luts != sorted(luts):
            state.counters["unsorted_pages"] += 1
            entry["unsorted"] = True
        if top > 1 and len(page) == top and len(set(luts)) == 1:
            state.counters["one_instant_pages"] += 1
        body = {"@odata.context": INCIDENTS_CONTEXT}
        if cursor["count"]:
            body["@odata.count"] = len(matches)
        body["value"] = [incident_graph(i, state.opts.tenant_id, cursor["expand"]) for i in page]
        more = top > 0 and start + top < len(matches)
        if more and "no_next_link" in state.modes:
            state.counters["full_pages_without_next_link"] += 1
        elif more:
            token = secrets.token_urlsafe(18)
            state.cursors[token] = dict(cursor, offset=start + top)
            host = state.base_url
            if "foreign_next_link" in state.modes:
                host = state.foreign_url
                state.counters["foreign_links"] += 1
                entry["foreign_next_link"] = True
            expand = "$expand=alerts&" if cursor["expand"] else ""
            body["@odata.nextLink"] = f"{host}{INCIDENTS_PATH}?{expand}$top={top}&$skiptoken={token}"
            entry["next_link"] = body["@odata.nextLink"]
        self.record_incidents(state, entry, tenant, page, cursor["expand"], "list")
        return 200, body

    def record_incidents(self, state, entry, tenant, incidents, expanded, via):
        entry["served"] = len(incidents)
        entry["served_ids"] = [i["id"] for i in incidents]
        for i in incidents:
            state.incidents_served.append({
                "id": i["id"], "lastUpdateDateTime": render_time(i["lut"]),
                "alerts": len(i["alerts"]), "alert_ids": [a["id"] for a in i["alerts"]],
                "alerts_included": expanded, "via": via, "tenant": tenant,
                "request": len(state.requests), "listener": entry["local"]})


def incident_truth(inc):
    return {"id": inc["id"], "lastUpdateDateTime": render_time(inc["lut"]),
            "alerts": len(inc["alerts"]), "alert_ids": [a["id"] for a in inc["alerts"]],
            "future": inc["lut"] >= FUTURE_TICKS}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT on a loopback address")
    p.add_argument("--mode", default="", help="comma-separated: " + ", ".join(sorted(MODES)))
    p.add_argument("--alerts", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hours", type=float, default=3.0, help="the alerts' times spread")
    p.add_argument("--tie-group", type=int, default=7,
                   help="this many alerts share one lastUpdateTime")
    p.add_argument("--future", type=int, default=2, help="alerts stamped 2100 (mode future)")
    p.add_argument("--sorted-runs", type=int, default=0,
                   help="ids in runs of this many alerts in time order, the runs shuffled")
    p.add_argument("--tenant-id", default="11111111-2222-4333-8444-555555555555",
                   help="the tenant the alerts say they belong to")
    p.add_argument("--client-id", default=CLIENT_ID)
    p.add_argument("--secret", default=SECRET)
    p.add_argument("--retry-after-for", action="append", default=[],
                   help="TENANT=KIND (huge, date9999, negative, junk, or a literal value)")
    p.add_argument("--throttle-every", type=int, default=3)
    p.add_argument("--revoke-after", type=int, default=3)
    p.add_argument("--revoke-times", type=int, default=1)
    p.add_argument("--clock-skew", type=float, default=420.0)
    p.add_argument("--foreign-host", default="127.0.0.2")
    p.add_argument("--incident-burst", type=int, default=60,
                   help="incidents sharing one lastUpdateDateTime (mode one_instant)")
    p.add_argument("--burst-time", choices=["within", "oldest"], default="within",
                   help="mode one_instant: where the burst's instant lies (see above)")
    p.add_argument("--change-before-get", type=int, default=0,
                   help="the first K GET /incidents/{id} move their incident first")
    p.add_argument("--big-incident", type=int, default=8,
                   help="the alerts of the one large incident (0: none)")
    p.add_argument("--expand-fail-above", type=int, default=5,
                   help="mode expand_500: an expanded page with an incident of more alerts "
                        "answers 500")
    opts = p.parse_args()
    opts.mode = [m for m in opts.mode.split(",") if m]
    unknown = set(opts.mode) - MODES
    if unknown:
        p.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    host, _, port = opts.listen.rpartition(":")
    if not loopback(host) or not loopback(opts.foreign_host):
        p.error("only loopback addresses (127.0.0.0/8, ::1)")

    state = Hostile(opts)
    server = Server((host, int(port)), Handler)
    server.state = state
    state.base_url = f"http://{host}:{server.server_address[1]}"
    threads = [threading.Thread(target=server.serve_forever, daemon=True)]
    if "foreign_next_link" in state.modes:
        foreign_handler = type("ForeignHandler", (Handler,), {"foreign": True})
        try:  # the same port number, when it is free there
            foreign = Server((opts.foreign_host, server.server_address[1]), foreign_handler)
        except OSError:
            foreign = Server((opts.foreign_host, 0), foreign_handler)
        foreign.state = state
        state.foreign_url = f"http://{opts.foreign_host}:{foreign.server_address[1]}"
        threads.append(threading.Thread(target=foreign.serve_forever, daemon=True))
    for t in threads:
        t.start()
    print(state.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
