"""The keys-first paginator returns exactly the pages Django's own paginator does."""

import pytest
from django.core.paginator import Paginator

from cases.models import Incident
from irportal.api import KeysFirstPaginator

pytestmark = pytest.mark.django_db


@pytest.fixture
def incidents(make_incident):
    # Two severities and two titles: orderings on them tie but for their last field.
    for n in range(23):
        make_incident(title=f"incident {n % 2}", severity="sev1" if n % 3 else "sev3")
    return Incident.objects.all()


@pytest.mark.parametrize(
    "ordering",
    [(), ("-reported_at", "-id"), ("reference",), ("-severity", "id"), ("title", "-pk")],
)
@pytest.mark.parametrize(("per_page", "orphans"), [(5, 0), (4, 2), (25, 0), (1, 0)])
def test_every_page_matches_djangos(incidents, ordering, per_page, orphans):
    queryset = incidents.order_by(*ordering) if ordering else incidents

    ours = KeysFirstPaginator(queryset, per_page, orphans=orphans)
    theirs = Paginator(queryset, per_page, orphans=orphans)

    assert ours.num_pages == theirs.num_pages
    for number in theirs.page_range:
        expected = [i.pk for i in theirs.page(number)]
        assert [i.pk for i in ours.page(number)] == expected, (ordering, number)


def test_a_list_pages_as_django_does():
    pages = KeysFirstPaginator(list(range(10)), 4)

    assert list(pages.page(3)) == [8, 9]


def test_last_page_of_the_api_reads_from_the_end(api, lead, incidents):
    answer = api(lead).get("/api/v1/incidents/?page_size=5&page=5").json()

    oldest = Incident.objects.order_by("reported_at", "id")[:3]
    assert [i["reference"] for i in answer["results"]] == [i.reference for i in reversed(oldest)]
    assert answer["count"] == 23 and answer["next"] is None


def test_an_api_ordering_that_ties_still_shows_each_row_once(api, lead, incidents):
    client = api(lead)

    seen = []
    for page in range(1, 6):
        answer = client.get(f"/api/v1/incidents/?ordering=severity&page_size=5&page={page}")
        seen += [i["reference"] for i in answer.json()["results"]]

    assert sorted(seen) == sorted(incidents.values_list("reference", flat=True))
