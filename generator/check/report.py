"""Reporters for ``check``: text, JSON and JUnit XML (for CI test reports)."""

from __future__ import annotations

import json
from collections import defaultdict

from generator.check.run import CheckReport
from generator.problems import Problem, problems_as_text


def as_text(report: CheckReport) -> str:
    lines = [problems_as_text(report.findings)] if report.findings else []
    used = "used" if report.kubeconform_binary else "not used"
    counts = ", ".join(_count(n, what) for n, what in ((report.errors, "error"),
                                                       (report.warnings, "warning")))
    lines.append(f"checked {_count(len(report.documents), 'document')} in "
                 f"{_count(report.files, 'file')}: {counts} (kubeconform {used})")
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def as_json(report: CheckReport) -> str:
    return json.dumps({
        "valid": report.errors == 0,
        "documents": len(report.documents),
        "files": report.files,
        "errors": report.errors,
        "warnings": report.warnings,
        "kubeconform": report.kubeconform_binary,
        "findings": [f.as_dict() for f in report.findings],
    }, indent=2)


def as_junit(report: CheckReport) -> str:
    """One test case per object (or file), failing with its errors."""
    import xml.etree.ElementTree as ET  # only JUnit runs need it: not at start-up

    by_case: dict[tuple[str, str], list[Problem]] = defaultdict(list)
    for doc in report.documents:
        ref = f"{doc.kind}/{doc.name}" if doc.kind and doc.name else doc.kind
        by_case[(doc.file, ref or doc.file)]
    for finding in report.findings:
        by_case[(finding.file, finding.object_ref or finding.file)].append(finding)
    suites = ET.Element("testsuites")
    failures = sum(1 for fs in by_case.values() if any(f.level == "error" for f in fs))
    suite = ET.SubElement(suites, "testsuite", name="k10fleet check", tests=str(len(by_case)),
                          failures=str(failures), errors="0", skipped="0")
    for (file, name), findings in sorted(by_case.items()):
        case = ET.SubElement(suite, "testcase", classname=file, name=name)
        errors = [f for f in findings if f.level == "error"]
        if errors:
            failure = ET.SubElement(case, "failure", message=errors[0].message, type="error")
            failure.text = "\n".join(f.as_text() for f in errors)
        warnings = [f for f in findings if f.level != "error"]
        if warnings:
            ET.SubElement(case, "system-out").text = "\n".join(f.as_text() for f in warnings)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")
