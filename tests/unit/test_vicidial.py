"""VICIdial's vocabulary: the rules each fact follows, as VICIdial's non_agent_api.php does."""

from __future__ import annotations

import pytest

from cdc import vicidial


class TestUrlRules:
    """Length, ``VAR`` and ``---DISABLED---``."""

    @pytest.mark.parametrize(("url", "sent"), [("http://a.b", False), ("http://a.bc", True), ("", False)])
    def test_long_enough_is_strictly_more_than_ten(self, url: str, sent: bool) -> None:
        """``strlen($url) > 10``: ten characters are not sent, eleven are."""
        assert vicidial.long_enough(url) is sent

    @pytest.mark.parametrize(
        ("template", "stripped"),
        [
            ("VARhttp://x/", "http://x/"),
            ("varhttp://x/", "varhttp://x/"),
            (" VARhttp://x/", " VARhttp://x/"),
            ("VARVARhttp://x/", "VARhttp://x/"),
            ("http://VAR/", "http://VAR/"),
        ],
    )
    def test_strip_var_is_one_leading_upper_case_var(self, template: str, stripped: str) -> None:
        """``preg_replace('/^VAR/', '', $url)``: once, at the very start, upper case only."""
        assert vicidial.strip_var(template) == stripped

    def test_disabled_ignores_surrounding_blanks_only(self) -> None:
        """``---DISABLED---`` with blanks around is disabled; other text is a URL."""
        assert vicidial.is_disabled(" ---DISABLED--- ")
        assert not vicidial.is_disabled("---disabled---")
        assert not vicidial.is_disabled("")


class TestNames:
    """Custom table names and the add_lead api_log ``data`` field."""

    def test_custom_table_round_trips(self) -> None:
        """``custom_<list_id>`` formats and parses back; other names are not custom tables."""
        assert vicidial.custom_table(101) == "custom_101"
        assert vicidial.custom_table_list_id(vicidial.custom_table(101)) == 101
        for name in ("custom_", "custom_1a", vicidial.LEAD_TABLE):
            assert vicidial.custom_table_list_id(name) is None

    def test_api_log_data_fields(self) -> None:
        """``phone|list_id|lead_id|gmt``: the list and lead ids by position, absent ones ``None``."""
        data = "3125551234|101|42|-5.00"
        assert vicidial.api_log_data_field(data, vicidial.DATA_LIST_ID) == "101"
        assert vicidial.api_log_data_field(data, vicidial.DATA_LEAD_ID) == "42"
        assert vicidial.api_log_data_field("3125551234", vicidial.DATA_LEAD_ID) is None

    def test_add_lead_fields_are_lead_columns_add_lead_sets(self) -> None:
        """Labels a custom field cannot take: the vicidial_list columns add_lead sets."""
        assert frozenset(vicidial.LEAD_COLUMNS) > vicidial.ADD_LEAD_FIELDS
        assert {"phone_number", "vendor_lead_code", "owner"} <= vicidial.ADD_LEAD_FIELDS
        assert not {"entry_date", "modify_date", "status", "user", "entry_list_id"} & vicidial.ADD_LEAD_FIELDS
