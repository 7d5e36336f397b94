"""Reading and checking manifests: refusals must name the file, the line and the object."""

import os
import textwrap

import pytest

from ambitlab.manifests import check_objects, load_paths, parse_text, split_documents, unknown_kinds

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BAD = os.path.join(REPO, "tests", "manifests")


def objs_of(text: str, file: str = "app.yaml"):
    objs, problems = parse_text(textwrap.dedent(text), file)
    assert not problems, problems
    return objs


def deployment(replicas="1", containers="[{name: app, ports: [{containerPort: 8080}]}]") -> str:
    return f"""
        kind: Deployment
        metadata: {{name: cart, namespace: shop}}
        spec:
          replicas: {replicas}
          template:
            metadata: {{labels: {{app: cart}}}}
            spec: {{containers: {containers}}}
        """


def test_documents_keep_their_first_line_and_text():
    docs = split_documents("a: 1\n---\n# note\nb: 2\n--- \nc: 3\n...\n")
    assert docs == [(1, "a: 1\n"), (3, "# note\nb: 2\n"), (6, "c: 3\n")]


def test_yaml_syntax_error_names_file_line_and_object():
    text = "kind: Namespace\nmetadata: {name: a}\n---\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n  labels: [x\nspec: {}\n"
    objs, problems = parse_text(text, "svc.yaml")
    assert [o.name for o in objs] == ["a"]
    assert len(problems) == 1
    text = str(problems[0])
    assert text.startswith("svc.yaml:9:") and "Service shop/web" in text and "YAML syntax error" in text


def test_documents_without_kind_or_name_are_refused():
    _, problems = parse_text("metadata: {name: x}\n---\nkind: Pod\nmetadata: {}\n---\n- a\n", "f.yaml")
    assert [p.line for p in problems] == [1, 3, 6]
    assert "no `kind`" in problems[0].message and "metadata.name" in problems[1].message


def test_objects_default_to_namespace_default_but_namespaces_are_cluster_scoped():
    objs = objs_of("kind: Service\nmetadata: {name: a}\n---\nkind: Namespace\nmetadata: {name: b, namespace: x}\n")
    assert [(o.kind, o.namespace, o.name) for o in objs] == [("Service", "default", "a"), ("Namespace", "", "b")]
    assert objs[0].ref == "Service default/a" and objs[1].ref == "Namespace b"


@pytest.mark.parametrize("replicas", ["two", "-1", "65", "true", "1.5"])
def test_bad_replicas_are_refused(replicas):
    problems = check_objects(objs_of(deployment(replicas=replicas)))
    assert len(problems) == 1 and "spec.replicas" in problems[0].message
    assert problems[0].obj == "Deployment shop/cart"


def test_good_deployment_passes():
    assert check_objects(objs_of(deployment(replicas="3"))) == []


@pytest.mark.parametrize("containers, needle", [
    ("[]", "containers is empty"),
    ("[{ports: [{containerPort: 80}]}]", "needs a name"),
    ("[{name: a}, {name: a}]", "used twice"),
    ("[{name: a, ports: [{containerPort: 70000}]}]", "containerPort"),
    ("[{name: a, env: [{name: X, valueFrom: {fieldRef: {fieldPath: x}}}]}]", "valueFrom"),
])
def test_bad_containers_are_refused(containers, needle):
    problems = check_objects(objs_of(deployment(containers=containers)))
    assert any(needle in p.message for p in problems), problems


@pytest.mark.parametrize("ports, needle", [
    ("[]", "at least one port"),
    ("[{port: 0}]", "port number"),
    ("[{port: 80, targetPort: ''}]", "targetPort"),
])
def test_bad_service_ports_are_refused(ports, needle):
    problems = check_objects(objs_of(f"kind: Service\nmetadata: {{name: s}}\nspec: {{ports: {ports}}}\n"))
    assert len(problems) == 1 and needle in problems[0].message


def test_duplicates_name_both_places():
    a = objs_of("kind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 1}]}\n", "a.yaml")
    b = objs_of("\n\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 1}]}\n", "b.yaml")
    problems = check_objects(a + b)
    assert len(problems) == 1 and str(problems[0]).startswith("b.yaml:1: Service default/s: defined twice (first at a.yaml:1)")


def test_names_must_be_dns_labels():
    problems = check_objects(objs_of("kind: Namespace\nmetadata: {name: Shop_1}\n"))
    assert problems and "DNS label" in problems[0].message


@pytest.mark.parametrize("directory, expected", [
    ("bad-yaml", "app.yaml:12: Deployment shop/cart: YAML syntax error"),
    ("bad-replicas", "app.yaml:1: Deployment shop/cart: spec.replicas"),
    ("no-containers", "app.yaml:1: Deployment shop/cart: spec.template.spec.containers is empty"),
    ("duplicate", "two.yaml:1: Service shop/cart: defined twice"),
])
def test_repository_bad_manifests_are_refused(directory, expected):
    objs, problems = load_paths([os.path.join(BAD, directory)])
    problems += check_objects(objs)
    assert any(expected in str(p) for p in problems), [str(p) for p in problems]


def test_empty_or_missing_directory_is_a_problem(tmp_path):
    _, problems = load_paths([str(tmp_path)])
    assert "no *.yaml" in problems[0].message
    _, problems = load_paths([str(tmp_path / "nope")])
    assert "no such file" in problems[0].message


def test_unknown_kinds_are_listed_once():
    objs = objs_of("kind: Widget\nmetadata: {name: a}\n---\nkind: Widget\nmetadata: {name: b}\n"
                   "---\nkind: VirtualService\nmetadata: {name: c}\n")
    assert unknown_kinds(objs) == ["Widget"]
