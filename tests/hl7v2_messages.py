"""Real-shaped VXU^V04 messages (CDC IG R1.5 layout) from Vietnamese sites, and
a seeded generator of broken ones."""

from __future__ import annotations

import random


def vxu(
    control_id: str = "MSG-0001",
    *,
    site: str = "79001",
    cccd: str | None = "079090012345",
    mrn: str = "BN-123",
    name: str = "Nguyễn^An^Văn",
    birth: str = "19900504",
    orders: list[str] | None = None,
) -> str:
    pid3 = f"{mrn}^^^{site}^MR" + (f"~{cccd}^^^VNM^NNVNM" if cccd else "")
    segments = [
        f"MSH|^~\\&|HIS-BV|{site}|VAXHUB|MOH|20210801093000+0700||VXU^V04^VXU_V04|{control_id}|P|2.5.1|||ER|AL|||||Z22^CDCPHINVS",
        f"PID|1||{pid3}||{name}||{birth}|M|||12 Lê Lợi^^Quận 1^Hồ Chí Minh^^VNM^H||^PRN^CP^^^091^2345678",
        "PD1|||Trạm Y tế Phường Bến Nghé^^79001||||||||N|||||A",
        "NK1|1|Trần^Hoa^Thị|MTH^Mother^HL70063||^PRN^PH^^^091^1111111",
    ]
    segments += orders if orders is not None else [new_dose()]
    return "\r".join(segments) + "\r"


def rxa(date: str, vaccine: str, *, lot: str = "", status: str = "CP", action: str = "A", source: str = "00^New record^NIP001", refusal: str = "", amount: str = "0.5") -> str:
    fields = ["RXA", "0", "1", date, "", vaccine, amount, "mL^^UCUM" if amount != "999" else "", "", source, "^Lê^Bình", "^^^79001",
              "", "", "", lot, "20221231" if lot else "", "AZ^AstraZeneca^MVX" if lot else "", refusal, "", status, action]
    return "|".join(fields)


def new_dose(order: str = "IZ-0001", date: str = "20210801093000", vaccine: str = "210^Vaxzevria^CVX", lot: str = "A1234", action: str = "A") -> str:
    return "\r".join([
        f"ORC|RE||{order}^79001",
        rxa(date, vaccine, lot=lot, action=action),
        "RXR|C28161^Intramuscular^NCIT|LD^Left deltoid^HL70163",
        "OBX|1|NM|30973-2^Dose number in series^LN|1|1||||||F",
    ])


def historical_dose(date: str = "20210601", vaccine: str = "Comirnaty") -> str:
    return "\r".join(["ORC|RE||9999^79001", rxa(date, vaccine, source="01^Historical information^NIP001", amount="999")])


def refused_dose(order: str = "IZ-0003", date: str = "20211001") -> str:
    return "\r".join([f"ORC|RE||{order}^79001", rxa(date, "210^Vaxzevria^CVX", status="RE", refusal="00002^Religious exemption^NIP002", amount="999")])


def malformed_vxu(rng: random.Random) -> str:
    """A VXU broken the way senders break them: a field emptied, a value
    garbled, a segment dropped or moved, delimiters lost, or random bytes."""
    good = vxu(f"M-{rng.randrange(10**9)}", orders=[new_dose(f"IZ-{rng.randrange(10**9)}")]).split("\r")[:-1]
    kind = rng.randrange(9)
    if kind == 0:  # a required field emptied
        target = rng.choice([("MSH", 9), ("MSH", 10), ("MSH", 4), ("PID", 3), ("PID", 5), ("PID", 7), ("RXA", 3), ("RXA", 5)])
        good = [_set_field(s, target[1], "") if s.startswith(target[0]) else s for s in good]
    elif kind == 1:  # an impossible date or unknown code
        target = rng.choice([("PID", 7, "19901345"), ("RXA", 3, "2021-08-01"), ("RXA", 5, "999^Unknown^CVX"), ("RXA", 3, "20990101"),
                             ("RXA", 20, "XX"), ("RXA", 21, "Z"), ("PID", 3, "123^^^VNM^NNVNM"), ("MSH", 12, "9.9"), ("MSH", 11, "Q")])
        good = [_set_field(s, target[1], target[2]) if s.startswith(target[0]) else s for s in good]
    elif kind == 2:  # a segment dropped
        drop = rng.choice(["PID", "ORC", "RXA"])
        good = [s for s in good if not s.startswith(drop)]
    elif kind == 3:  # segments out of order
        good = [good[0]] + list(reversed(good[1:]))
    elif kind == 4:  # MSH damaged
        good[0] = good[0][: rng.randrange(3, 12)]
    elif kind == 5:  # random printable garbage
        return "".join(chr(rng.randrange(32, 0x2000)) for _ in range(rng.randrange(0, 200)))
    elif kind == 6:  # delimiters replaced
        good = [s.replace("|", rng.choice([",", "\t", "^"])) for s in good]
    elif kind == 7:  # message type changed
        good[0] = _set_field(good[0], 9, rng.choice(["ADT^A01", "VXU^V05", "ORU^R01", "QBP^Q11"]))
    else:  # truncated mid-message
        text = "\r".join(good)
        return text[: rng.randrange(len(text) // 3)]
    return "\r".join(good) + "\r"


def _set_field(segment: str, position: int, value: str) -> str:
    fields = segment.split("|")
    index = position if not segment.startswith("MSH") else position - 1
    while len(fields) <= index:
        fields.append("")
    fields[index] = value
    return "|".join(fields)
