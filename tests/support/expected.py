"""Hand-written expectations shared by tests: a template using every kind of token, and
VICIdial's request target for the lead those tests add (written from vicidial.md, never
produced by the code under test)."""

from __future__ import annotations

EXACT_TEMPLATE = (
    "VAR{base}/new?id=--A--lead_id--B--&ph=--A--phone_number--B--&fn=--A--First_Name--B--"
    "&ln=--a--last_name--b--&list=--A--list_name--B--&camp=--A--campaign--B--&g=--A--gender--B--"
    "&dob=--A--date_of_birth--B--&gmt=--A--gmt_offset_now--B--&unk=--A--nosuch--B--"
    "&v=--A--vendor_id--B--&u=--A--user--B--&c=--A--comments--B--&st=--A--status--B--"
)


def exact_expected(lead_id: int) -> str:
    """VICIdial's target for the exact-request lead (trim, PHP urlencode, ENUM label, zero date)."""
    return (
        f"/new?id={lead_id}&ph=3125551234&fn=Jo+Ann&ln=O%27Neil%26Co&list=Web+leads&camp=CAMP1&g=U"
        "&dob=0000-00-00&gmt=-5.00&unk=--A--nosuch--B--&v=V%2F1&u=6666&c=a%7Eb+c&st=NEW"
    )
