"""pkilint (an independent RFC 5280 linter) over our certificates and CRLs, via its Python API."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pkilint import loader, pkix
from pkilint.pkix import certificate, crl, extension, name
from pkilint.validation import ValidationFindingSeverity

Finding = tuple[str, str, str]  # (severity, code, message or where)


def _findings(results: object) -> list[Finding]:
    out = []
    for result in results:  # type: ignore[attr-defined]
        for desc in result.finding_descriptions:
            where = desc.message or str(result.node.path)
            out.append((desc.finding.severity.name, desc.finding.code, where))
    return out


def lint_certificate(cert: x509.Certificate) -> list[Finding]:
    """Every finding of pkilint's RFC 5280 certificate profile (what `lint_pkix_cert` runs)."""
    validator = certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )
    doc = loader.RFC5280CertificateDocumentLoader().load_der_document(
        cert.public_bytes(Encoding.DER), "certificate"
    )
    return _findings(validator.validate(doc.root))


def lint_crl(value: x509.CertificateRevocationList) -> list[Finding]:
    """Every finding of pkilint's RFC 5280 CRL profile (what `lint_crl -t CRL -p PKIX` runs)."""
    validator = crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            crl.create_issuer_validator_container([]),
            crl.create_validity_validator_container([]),
            crl.create_extensions_validator_container([]),
        ],
    )
    doc = loader.RFC5280CertificateListDocumentLoader().load_der_document(
        value.public_bytes(Encoding.DER), "crl"
    )
    return _findings(validator.validate(doc.root))


def is_spiffe_scheme_false_positive(finding: Finding) -> bool:
    """pkilint checks URIs with `validators.url`, whose scheme allow-list lacks `spiffe`.

    `spiffe://<trust-domain>/<id>` is a valid RFC 3986 URI (and our identity SAN); the tests
    prove separately that the same URI passes once only its scheme is swapped.
    """
    return finding[1] == "pkix.invalid_uri_syntax" and 'URI syntax: "spiffe://' in finding[2]


def errors(findings: list[Finding]) -> list[Finding]:
    """Findings of severity ERROR or worse (FATAL), less the spiffe-scheme false positive."""
    limit = ValidationFindingSeverity.ERROR
    return [
        f
        for f in findings
        if ValidationFindingSeverity[f[0]] <= limit and not is_spiffe_scheme_false_positive(f)
    ]
