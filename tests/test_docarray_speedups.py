"""The DocArray fixes keep documents behaving as DocArray defines them."""

import copy

from memeflow.documents import MatchDoc, MemeDoc


def test_each_document_gets_its_own_empty_match_list_of_the_declared_type() -> None:
    default = MemeDoc.model_fields["matches"].default
    first, second = MemeDoc(text="a"), MemeDoc(text="b")
    assert first.matches is not second.matches and first.matches is not default
    assert type(first.matches) is type(default) and first.matches.doc_type is MatchDoc
    first.matches.append(MatchDoc(id="1", uri="/a.jpg", score=0.5))
    assert len(second.matches) == 0 and len(default) == 0 and len(MemeDoc().matches) == 0


def test_a_deep_copy_of_a_filled_list_copies_its_documents() -> None:
    doc = MemeDoc(text="a")
    doc.matches.append(MatchDoc(id="1", uri="/a.jpg", score=0.5))
    copied = copy.deepcopy(doc)
    assert copied.matches is not doc.matches and copied.matches[0] is not doc.matches[0]
    assert copied.matches[0].id == "1" and type(copied.matches) is type(doc.matches)
