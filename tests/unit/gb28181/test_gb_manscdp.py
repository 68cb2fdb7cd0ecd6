"""MANSCDP bodies: what we build parses back, in every charset, and hostile bodies are refused."""

from __future__ import annotations

import pytest

from gateway.gb28181 import manscdp
from gateway.gb28181.manscdp import AlarmNotice, CatalogItem, ManscdpError

BOX = "51042110302000000001"


def _items(n: int) -> list[CatalogItem]:
    return [
        CatalogItem(f"510421103013200{i:05d}", f"摄像头 {i}", "510421103", BOX, online=i % 2 == 0, latitude=26.9)
        for i in range(n)
    ]


@pytest.mark.parametrize("charset", ["GB2312", "GB18030", "UTF-8"])
def test_catalog_pages_round_trip(charset: str) -> None:
    pages = manscdp.catalog_pages("17", BOX, _items(45), 20, charset)
    assert len(pages) == 3
    assert pages[0].startswith(f'<?xml version="1.0" encoding="{charset}"?>'.encode())
    seen = []
    for page in pages:
        q = manscdp.parse(page, "UTF-8")  # decoded by its declaration, not the fallback
        assert (q.root, q.cmd, q.sn, q.device_id) == ("Response", "Catalog", "17", BOX)
        assert q.text("SumNum") == "45"
        dl = q.element.find("DeviceList")
        assert dl is not None
        items = dl.findall("Item")
        assert dl.get("Num") == str(len(items))
        seen += [(i.findtext("DeviceID"), i.findtext("Name"), i.findtext("Status")) for i in items]
    assert [s[0] for s in seen] == [c.channel_id for c in _items(45)]
    assert seen[1] == ("51042110301320000001", "摄像头 1", "OFF")
    assert seen[0][2] == "ON"


def test_empty_catalog_is_one_page() -> None:
    (page,) = manscdp.catalog_pages("1", BOX, [], 20, "GB2312")
    q = manscdp.parse(page, "GB2312")
    assert q.text("SumNum") == "0" and q.element.find("DeviceList").get("Num") == "0"  # type: ignore[union-attr]


def test_2022_items_carry_the_grassroots_code() -> None:
    (page,) = manscdp.catalog_pages("1", BOX, _items(1), 20, "GB18030", version="2022")
    q = manscdp.parse(page, "GB18030")
    assert q.text("DeviceList/Item/OrgCode") == "000000"


def test_a_name_outside_gb2312_becomes_a_character_reference() -> None:
    item = CatalogItem("51042110301320000001", "Camera 😀", "510421103", BOX, online=True)
    (page,) = manscdp.catalog_pages("1", BOX, [item], 20, "GB2312")
    page.decode("gb2312")  # the bytes match the declaration
    assert manscdp.parse(page, "GB2312").text("DeviceList/Item/Name") == "Camera 😀"


def test_alarm_and_keepalive_bodies() -> None:
    body = manscdp.alarm(
        9, AlarmNotice("51042110301320000001", 1, 5, 6, "2026-12-06T10:20:30", "入侵", 102.1, 26.9), "GB2312"
    )
    q = manscdp.parse(body, "GB2312")
    assert (q.root, q.cmd, q.sn, q.device_id) == ("Notify", "Alarm", "9", "51042110301320000001")
    assert (q.text("AlarmMethod"), q.text("Info/AlarmType"), q.text("AlarmPriority")) == ("5", "6", "1")
    assert q.text("AlarmDescription") == "入侵" and q.text("AlarmTime") == "2026-12-06T10:20:30"
    assert q.text("Longitude") == "102.100000"
    ka = manscdp.parse(manscdp.keepalive(3, BOX, "UTF-8"), "UTF-8")
    assert (ka.root, ka.cmd, ka.text("Status")) == ("Notify", "Keepalive", "OK")


def test_queries_from_platforms_parse() -> None:
    body = (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Query>\r\n<CmdType>Catalog</CmdType>\r\n'
        f"<SN>248</SN>\r\n<DeviceID>{BOX}</DeviceID>\r\n</Query>\r\n"
    ).encode("gb2312")
    q = manscdp.parse(body, "GB2312")
    assert (q.root, q.cmd, q.sn, q.device_id) == ("Query", "Catalog", "248", BOX)


def test_a_mislabelled_charset_still_reads() -> None:
    # Platforms declare GB2312 and send UTF-8 (and the other way round): try the others.
    body = '<?xml version="1.0" encoding="GB2312"?>'
    body += "<Query><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>名</DeviceID></Query>"
    assert manscdp.parse(body.encode("utf-8"), "GB2312").device_id == "名"


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Query><CmdType>&lol2;</CmdType><SN>1</SN><DeviceID>1</DeviceID></Query>"""


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (BOMB, 400),
        (b'<?xml version="1.0"?><!DOCTYPE q SYSTEM "file:///etc/passwd"><Query/>', 400),
        (b"<Query><CmdType>Catalog</CmdType>", 400),
        (b"<Query><SN>1</SN></Query>", 400),
        (b"<Query>" + b"x" * (70 * 1024) + b"</Query>", 413),
        (b'<?xml version="1.0" encoding="no-such-charset"?><Query><CmdType>\xff\xff</CmdType></Query>', 415),
    ],
)
def test_hostile_bodies_are_refused(body: bytes, status: int) -> None:
    with pytest.raises(ManscdpError) as info:
        manscdp.parse(body, "GB2312")
    assert info.value.status == status
