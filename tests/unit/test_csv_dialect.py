"""The CSV sniffer on the dialects people export, and the user's overrides."""

from __future__ import annotations

import pytest

from datrix.jobs.csv_dialect import CsvOptions, Dialect, options_from_cli, sniff

GERMAN = (
    "Kunde;Betrag;Datum;Notiz\r\n"
    '"Müller; Anna";1234,56;31.01.2024;"sagt ""hallo"""\r\n'
    "Schmidt;-7,5;01.02.2024;\r\n"
    'Lang;0,25;02.02.2024;"a;b"\r\n'
)


def test_german_excel_export() -> None:
    assert sniff(GERMAN, CsvOptions()) == Dialect(";", '"', ",", True)


def test_semicolons_with_dot_decimals_keep_the_dot() -> None:
    assert sniff("a;b\n1.5;2\n2.5;3\n", CsvOptions()) == Dialect(";", '"', ".", True)


@pytest.mark.parametrize(
    ("sample", "delimiter"),
    [
        ("id|name|score\n1|a|1.5\n2|b|2.5\n", "|"),
        ("id\tname\tscore\n1\ta, b\t1.5\n2\tc\t2.5\n", "\t"),
        ("id,name\n1,x;y\n2,z;w\n", ","),
        ("just_one_column\n1\n2\n", ","),
    ],
)
def test_delimiter(sample: str, delimiter: str) -> None:
    assert sniff(sample, CsvOptions()).delimiter == delimiter


def test_tab_in_a_csv_needs_no_extension() -> None:
    assert sniff("a\tb\n1\t2\n", CsvOptions(), default_delimiter=",").delimiter == "\t"


def test_header_or_not() -> None:
    assert sniff("1,2.5,x\n2,3.5,y\n3,4.5,z\n", CsvOptions()).header is False
    assert sniff("id,score,name\n1,2.5,x\n2,3.5,y\n", CsvOptions()).header is True
    assert sniff("name,city\nAnna,Berlin\nBo,Köln\n", CsvOptions()).header is True  # all text


def test_single_quotes() -> None:
    found = sniff("id,name\n1,'a,b'\n2,'c'\n", CsvOptions())
    assert (found.delimiter, found.quote) == (",", "'")


def test_overrides_win() -> None:
    forced = CsvOptions(delimiter=",", quote="'", decimal=".", header=False)
    assert sniff(GERMAN, forced) == Dialect(",", "'", ".", False)


def test_describe_is_one_line() -> None:
    assert Dialect(";", '"', ",", True).describe() == (
        "delimiter ';', quote '\"', decimal ',', header yes"
    )
    assert "delimiter tab" in Dialect("\t", '"', ".", False).describe()


def test_cli_options() -> None:
    assert options_from_cli("tab", None, None, False) == CsvOptions("\t", None, None, False)
    assert options_from_cli(";", "'", ",", None) == CsvOptions(";", "'", ",", None)
    assert options_from_cli(None, None, None, True) == CsvOptions(header=True)
    for bad in (("ab", None, None), ("\n", None, None), (";", ";", None), (",", None, ",")):
        with pytest.raises(ValueError):
            options_from_cli(bad[0], bad[1], bad[2], None)
