"""Tracks as graphs: geff written by ``subcell track`` and read back, geff and TrackMate XML from other tools."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from subcell.errors import InputFileError, OutputExistsError
from subcell.io.geff import is_trackmate_xml, related_labels
from subcell.track import tracks_from_lineage
from subcell.track.evaluate import evaluate_tracks
from subcell.track.graph import read_track_graph, tracks_from_graph, write_geff
from subcell.track.points import evaluate_point_tracks, read_point_tracks
from tests.conftest import cli_user_error

VS = (1.0, 0.5, 0.5)


def _dividing_movie() -> np.ndarray:
    """2D movie: track 7 in frames 0-1 divides into tracks 3 (frames 2-3) and 9 (frames 2-4)."""
    lab = np.zeros((5, 1, 30, 30), np.uint16)
    lab[0:2, 0, 10:16, 10:16] = 7
    lab[2:4, 0, 4:10, 10:16] = 3
    lab[2:5, 0, 18:24, 10:16] = 9
    return lab


def test_geff_round_trip_keeps_positions_lineage_and_masks(tmp_path: Path) -> None:
    lab = _dividing_movie()
    truth = tracks_from_lineage(lab, {3: 7, 9: 7}, voxel_size=VS, time_interval_s=60)
    write_geff(tmp_path / "t.geff", truth.table, two_d=True, time_interval_s=60, labels_path="../lab.ome.zarr")
    assert related_labels(tmp_path / "t.geff") == (tmp_path / "lab.ome.zarr").resolve()
    points = read_track_graph(tmp_path / "t.geff", voxel_size=(9.0, 9.0, 9.0))  # µm stated: voxel size unused
    # tracklets renumbered by first frame; the daughters' parent is the mother's tracklet
    assert points.groupby("track_id")["t"].agg(["min", "max"]).values.tolist() == [[0, 1], [2, 3], [2, 4]]
    assert points.groupby("track_id")["parent_track"].first().tolist() == [0, 1, 1]
    mother = points[points.track_id == 1]
    assert mother[["y_um", "x_um"]].to_numpy()[0] == pytest.approx([6.25, 6.25])  # centroid of 10:16 × 0.5 µm
    assert set(points.seg_id) == {3, 7, 9} and (points.z_um == 0).all()
    import geff

    graph, _ = geff.read(tmp_path / "t.geff")  # each node carries its object's volume (what a viewer colours by)
    volumes = sorted(a["volume_um3"] for _, a in graph.nodes(data=True))
    assert volumes == sorted(truth.table.volume_um3.tolist()) and "mean_intensity" not in graph.nodes[1]
    assert {a["lineage_id"] for _, a in graph.nodes(data=True)} == {7}  # both daughters descend from track 7
    back = tracks_from_graph(lab, points, voxel_size=VS)
    scores, _ = evaluate_tracks(back, truth)
    assert scores["TRA"] == pytest.approx(1.0) and scores["division_f1"] == pytest.approx(1.0)
    assert scores["true_divisions"] == 1 and back.lineage.parent_track.tolist() == [0, 1, 1]


def _graph_in_pixels() -> nx.DiGraph:
    """Another tool's graph: string node ids, positions in pixels, a division at frame 1."""
    g = nx.DiGraph()
    for n, (t, y, x) in {"a": (0, 13, 13), "b": (1, 13, 13), "c": (2, 7, 13), "d": (2, 21, 13)}.items():
        g.add_node(n, t=t, y=float(y), x=float(x))
    g.add_edges_from([("a", "b"), ("b", "c"), ("b", "d")])
    return g


def test_foreign_geff_in_pixels_scored_as_points(tmp_path: Path) -> None:
    import geff

    g = nx.relabel_nodes(_graph_in_pixels(), {"a": 0, "b": 1, "c": 2, "d": 3})
    geff.write(g, tmp_path / "p.geff", axis_names=["t", "y", "x"], axis_types=["time", "space", "space"])
    points = read_point_tracks(tmp_path / "p.geff", voxel_size=VS)
    assert points[["y_um", "x_um"]].to_numpy()[0] == pytest.approx([6.5, 6.5])  # pixels × 0.5 µm
    assert points.groupby("track_id")["parent_track"].first().tolist() == [0, 1, 1]
    lab = np.zeros((3, 1, 30, 30), np.uint16)
    lab[0:2, 0, 10:16, 10:16] = 1
    lab[2, 0, 4:10, 10:16], lab[2, 0, 18:24, 10:16] = 2, 3
    pred = tracks_from_lineage(lab, {2: 1, 3: 1}, voxel_size=VS)
    s = evaluate_point_tracks(pred, points, voxel_size=VS)
    assert s["TRA"] == pytest.approx(1.0) and s["division_f1"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: g.add_edge(0, 3), "several predecessors"),
        (lambda g: g.add_edge(3, 4) or g.nodes[4].update(t=1, y=1.0, x=1.0), "do not go forward in time"),
        (lambda g: g.nodes[1].update(t=1.5), "whole frame numbers"),
    ],
)
def test_graphs_that_are_no_lineage_are_refused(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    import geff

    g = nx.relabel_nodes(_graph_in_pixels(), {"a": 0, "b": 1, "c": 2, "d": 3})
    change(g)
    geff.write(g, tmp_path / "bad.geff", axis_names=["t", "y", "x"], axis_types=["time", "space", "space"])
    with pytest.raises(InputFileError, match=message):
        read_track_graph(tmp_path / "bad.geff", voxel_size=VS)


def test_unknown_length_unit_is_refused(tmp_path: Path) -> None:
    import geff

    g = nx.relabel_nodes(_graph_in_pixels(), {"a": 0, "b": 1, "c": 2, "d": 3})
    geff.write(g, tmp_path / "u.geff", axis_names=["t", "y", "x"], axis_units=[None, "furlong", "furlong"])
    with pytest.raises(InputFileError, match="unit 'furlong'; expected a length"):
        read_track_graph(tmp_path / "u.geff", voxel_size=VS)


def _trackmate_xml(path: Path, spots: dict[int, tuple[int, float, float]], edges: list[tuple[int, int]],
                   units: str = "micron") -> Path:  # fmt: skip
    """A TrackMate model as Fiji saves it (the parts a reader needs): spots per frame, one track of edges."""
    feats = "".join(f'<Feature feature="{f}" name="{f}" shortname="{f}" dimension="{d}" isint="{i}" />'
                    for f, d, i in [("POSITION_X", "POSITION", "false"), ("POSITION_Y", "POSITION", "false"),
                                    ("POSITION_Z", "POSITION", "false"), ("POSITION_T", "TIME", "false"),
                                    ("FRAME", "NONE", "true"), ("QUALITY", "QUALITY", "false")])  # fmt: skip
    frames = sorted({t for t, _, _ in spots.values()})
    spot = {i: f'<Spot ID="{i}" name="ID{i}" POSITION_X="{x}" POSITION_Y="{y}" POSITION_Z="0.0" '
               f'POSITION_T="{t * 60.0}" FRAME="{t}" QUALITY="1.0" />' for i, (t, y, x) in spots.items()}  # fmt: skip
    in_frame = {f: "".join(spot[i] for i, (t, _, _) in spots.items() if t == f) for f in frames}
    spot_xml = "".join(f'<SpotsInFrame frame="{f}">{in_frame[f]}</SpotsInFrame>' for f in frames)
    edge_xml = "".join(f'<Edge SPOT_SOURCE_ID="{a}" SPOT_TARGET_ID="{b}" />' for a, b in edges)
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><TrackMate version="7.13.2"><Model spatialunits="{units}" '
        f'timeunits="sec"><FeatureDeclarations><SpotFeatures>{feats}</SpotFeatures><EdgeFeatures>'
        '<Feature feature="SPOT_SOURCE_ID" name="s" shortname="s" dimension="NONE" isint="true" />'
        '<Feature feature="SPOT_TARGET_ID" name="t" shortname="t" dimension="NONE" isint="true" />'
        '</EdgeFeatures><TrackFeatures><Feature feature="TRACK_ID" name="Track ID" shortname="ID" dimension="NONE" '
        f'isint="true" /></TrackFeatures></FeatureDeclarations><AllSpots nspots="{len(spots)}">{spot_xml}</AllSpots>'
        f'<AllTracks><Track name="Track_0" TRACK_ID="0">{edge_xml}</Track></AllTracks><FilteredTracks>'
        '<TrackID TRACK_ID="0" /></FilteredTracks></Model></TrackMate>'
    )  # fmt: skip
    return path


def test_trackmate_xml_with_a_division(tmp_path: Path) -> None:
    spots = {10: (0, 6.5, 6.5), 11: (1, 6.5, 6.5), 12: (2, 3.5, 6.5), 13: (2, 10.5, 6.5)}
    xml = _trackmate_xml(tmp_path / "tm.xml", spots, [(10, 11), (11, 12), (11, 13)])
    points = read_point_tracks(xml, voxel_size=VS)  # µm ("micron"): used as they are
    assert points.groupby("track_id")["t"].agg(["min", "max"]).values.tolist() == [[0, 1], [2, 2], [2, 2]]
    assert points.groupby("track_id")["parent_track"].first().tolist() == [0, 1, 1]
    assert sorted(points.y_um) == [3.5, 6.5, 6.5, 10.5]
    in_pixels = read_point_tracks(_trackmate_xml(tmp_path / "px.xml", spots, [(10, 11)], "pixel"), voxel_size=VS)
    assert sorted(in_pixels.y_um) == [1.75, 3.25, 3.25, 5.25]  # pixels × 0.5 µm
    assert in_pixels.track_id.nunique() == 3  # one linked pair, two lone spots
    (tmp_path / "not.xml").write_text("<html><body>hello</body></html>")
    assert is_trackmate_xml(xml) and not is_trackmate_xml(tmp_path / "not.xml")  # napari asks other readers
    with pytest.raises(InputFileError, match="not a readable TrackMate XML"):
        read_point_tracks(tmp_path / "not.xml", voxel_size=VS)


# what TrackMate's reader (TmXmlReader, v7) dereferences or parses, checked on the files we write
TRACKMATE_DIMENSIONS = {"NONE", "QUALITY", "COST", "INTENSITY", "INTENSITY_SQUARED", "POSITION", "VELOCITY", "LENGTH",
                        "AREA", "TIME", "ANGLE", "RATE", "ANGLE_RATE", "STRING"}  # fmt: skip


def _check_trackmate_layout(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "TrackMate" and tuple(map(int, root.get("version").split("."))) >= (2, 1, 0)
    model = root.find("Model")
    declared = {}
    for group in ("SpotFeatures", "EdgeFeatures", "TrackFeatures"):
        feats = model.find(f"FeatureDeclarations/{group}")
        for f in feats.findall("Feature"):
            assert f.get("dimension") in TRACKMATE_DIMENSIONS and f.get("isint") in ("true", "false")
            assert f.get("name") and f.get("shortname")
        declared[group] = {f.get("feature"): f.get("isint") == "true" for f in feats.findall("Feature")}
    spots = {}
    for frame in model.find("AllSpots").findall("SpotsInFrame"):
        for spot in frame.findall("Spot"):
            feats = {k: v for k, v in spot.attrib.items() if k not in ("ID", "name")}
            assert set(feats) <= set(declared["SpotFeatures"])  # every value declared, and a number
            assert all(float(v) == int(v) if declared["SpotFeatures"][k] else float(v) == float(v) or v == "NaN"
                       for k, v in feats.items())  # fmt: skip
            assert int(feats["FRAME"]) == int(frame.get("frame"))
            spots[int(spot.get("ID"))] = feats
    assert int(model.find("AllSpots").get("nspots")) == len(spots)
    track_ids = set()
    for track in model.find("AllTracks").findall("Track"):
        assert set(track.attrib) - {"name"} <= set(declared["TrackFeatures"])
        edges = track.findall("Edge")
        assert edges  # TrackMate has no track without an edge
        for e in edges:
            a, b = spots[int(e.get("SPOT_SOURCE_ID"))], spots[int(e.get("SPOT_TARGET_ID"))]
            assert int(a["FRAME"]) < int(b["FRAME"])
        track_ids.add(int(track.get("TRACK_ID")))
    assert {int(t.get("TRACK_ID")) for t in model.find("FilteredTracks").findall("TrackID")} == track_ids
    settings = root.find("Settings")
    for name in ("ImageData", "BasicSettings", "InitialSpotFilter", "SpotFilterCollection", "TrackFilterCollection",
                 "AnalyzerCollection/SpotAnalyzers", "AnalyzerCollection/EdgeAnalyzers",
                 "AnalyzerCollection/TrackAnalyzers"):  # fmt: skip
        assert settings.find(name) is not None, name
    assert settings.find("DetectorSettings").get("DETECTOR_NAME") == "MANUAL_DETECTOR"
    assert float(settings.find("DetectorSettings").get("RADIUS")) > 0
    assert settings.find("TrackerSettings").get("TRACKER_NAME") == "MANUAL_TRACKER"
    return root


def test_tracks_written_as_trackmate_xml_read_back_as_the_same_lineages(tmp_path: Path) -> None:
    from subcell.track.graph import write_trackmate

    lab = _dividing_movie()
    lab[4, 0, 0:4, 0:4] = 13  # a lone object: a spot in no TrackMate track
    tracks = tracks_from_lineage(lab, {3: 7, 9: 7}, voxel_size=VS, time_interval_s=60)
    xml = tmp_path / "tracks.xml"
    write_trackmate(xml, tracks.table, shape=(5, 1, 30, 30), voxel_size=VS, time_interval_s=60)
    root = _check_trackmate_layout(xml)
    (track,) = root.findall("Model/AllTracks/Track")  # the lineage of 7 is one TrackMate track; 13 is alone
    assert track.get("TRACK_ID") == "7" and track.get("NUMBER_SPLITS") == "1" and track.get("NUMBER_SPOTS") == "7"
    assert track.get("TRACK_DURATION") == "240.0"  # seconds, frames 0-4 at 60 s
    spots = {int(s.get("ID")): s.attrib for s in root.iter("Spot")}
    first = next(a for a in spots.values() if a["FRAME"] == "0")
    assert float(first["POSITION_X"]) == 6.25 and float(first["POSITION_T"]) == 0.0
    assert float(first["RADIUS"]) == pytest.approx(np.sqrt(36 * 0.25 / np.pi))  # the disc of its 9 µm² (2D)
    image = root.find("Settings/ImageData").attrib
    assert (image["width"], image["height"], image["nslices"], image["nframes"]) == ("30", "30", "1", "5")
    assert (float(image["pixelwidth"]), float(image["voxeldepth"]), float(image["timeinterval"])) == (0.5, 1.0, 60)
    # read back through geff's TrackMate converter: the same tracklets, division and positions
    points = read_point_tracks(xml, voxel_size=(9.0, 9.0, 9.0))  # µm stated: the voxel size is not used
    assert points.groupby("track_id")["t"].agg(["min", "max"]).values.tolist() == [[0, 1], [2, 3], [2, 4], [4, 4]]
    assert points.groupby("track_id")["parent_track"].first().tolist() == [0, 1, 1, 0]
    scores = evaluate_point_tracks(tracks, points, voxel_size=VS)
    assert scores["TRA"] == 1.0 and scores["true_divisions"] == 1 and scores["division_f1"] == 1.0
    with pytest.raises(OutputExistsError):
        write_trackmate(xml, tracks.table, shape=(5, 1, 30, 30), voxel_size=VS, time_interval_s=60)


def test_cli_writes_geff_and_scores_graphs_of_other_tools(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from subcell import io
    from subcell.cli.main import run
    from subcell.image import Image

    def cli(*args: str) -> tuple[str, str]:
        capsys.readouterr()
        assert run(list(args)) == 0
        return capsys.readouterr()  # type: ignore[return-value]

    lab = _dividing_movie()[:, 0]
    io.write(Image(lab[:, None, None], voxel_size=VS, dims="TCZYX", time_interval=60.0), tmp_path / "lab.ome.tif")
    cli("track", str(tmp_path / "lab.ome.tif"), str(tmp_path / "tr"), "--max-speed-um-per-min", "8")
    geff_dir = tmp_path / "tr" / "tracks.geff"
    assert related_labels(geff_dir) == (tmp_path / "tr" / "labels.ome.zarr").resolve()
    _check_trackmate_layout(tmp_path / "tr" / "tracks.xml")  # for Fiji: no intensity image, no file named
    assert ET.parse(tmp_path / "tr" / "tracks.xml").find("Settings/ImageData").get("filename") == ""
    cli(
        "track",
        str(tmp_path / "lab.ome.tif"),
        str(tmp_path / "tr2"),
        "--max-speed-um-per-min",
        "8",
        "--image",
        str(tmp_path / "lab.ome.tif"),
    )
    with_image = ET.parse(tmp_path / "tr2" / "tracks.xml")
    assert with_image.find("Settings/ImageData").get("filename") == "../lab.ome.tif"
    spot = with_image.find("Model/AllSpots/SpotsInFrame/Spot")  # the mean intensity measured in --image, and volume
    assert float(spot.get("MEAN_INTENSITY_CH1")) > 0 and float(spot.get("VOLUME_UM3")) > 0
    assert (
        ET.parse(tmp_path / "tr" / "tracks.xml").find("Model/AllSpots/SpotsInFrame/Spot").get("MEAN_INTENSITY_CH1")
        is None
    )  # nothing measured without an image
    out, _ = cli("evaluate-tracks", str(tmp_path / "tr"), str(tmp_path / "tr2" / "tracks.xml"))
    assert "TRA 1.0000" in out and "F1 1.000 (1 true, 1 predicted)" in out
    out, _ = cli("evaluate-tracks", str(tmp_path / "tr2" / "tracks.xml"), str(tmp_path / "tr"))  # points predicted
    assert "of 7 predicted points inside a true object" in out and "TRA 1.0000" in out
    assert "F1 1.000 (1 true, 1 predicted)" in out
    ctc = str(tmp_path / "tr" / "ctc")  # CTC masks state no voxel size: µm points need it given, not assumed 1 µm
    assert "CTC folder states no voxel size" in cli_user_error(capsys, "evaluate-tracks", str(tmp_path / "tr2" /
                                                                                       "tracks.xml"), ctc)  # fmt: skip
    out, _ = cli("evaluate-tracks", str(tmp_path / "tr2" / "tracks.xml"), ctc, "--voxel-size", "1", "0.5", "0.5")
    assert "TRA 1.0000" in out and "F1 1.000 (1 true, 1 predicted)" in out
    assert "both the prediction and the truth are point tracks" in cli_user_error(
        capsys, "evaluate-tracks", str(tmp_path / "tr2" / "tracks.xml"), str(tmp_path / "tr" / "tracks.xml")
    )
    out, _ = cli("evaluate-tracks", str(geff_dir), str(tmp_path / "tr"))  # the graph with its masks
    assert "TRA 1.0000" in out and "SEG 1.0000" in out and "F1 1.000 (1 true, 1 predicted)" in out
    spots = {0: (0, 6.5, 6.5), 1: (1, 6.5, 6.5), 2: (2, 3.5, 6.5), 3: (2, 10.5, 6.5), 4: (3, 3.5, 6.5)}
    xml = _trackmate_xml(tmp_path / "tm.xml", spots, [(0, 1), (1, 2), (1, 3), (2, 4)])
    out, _ = cli("evaluate-tracks", str(tmp_path / "tr"), str(xml))
    assert "point tracks: 100.0% of 5 points" in out and "F1 1.000 (1 true, 1 predicted)" in out
    out, _ = cli("info", str(geff_dir), str(xml))  # what each graph holds
    assert "7 nodes, 3 tracklets, 1 divisions" in out and "t in frames (× 60 second), y in micrometer" in out
    assert "format  trackmate-xml" in out and "5 nodes, 3 tracklets, 1 divisions" in out
    alone = tmp_path / "alone.geff"
    geff_dir.rename(
        alone
    )  # its labels (../labels.ome.zarr) no longer beside it: scored as points, truth or prediction, with a note
    out, err = cli("evaluate-tracks", str(tmp_path / "tr"), str(alone))
    assert "SEG nan" in out and "scored as points" in err
    out, err = cli("evaluate-tracks", str(alone), str(tmp_path / "tr"))
    assert "predicted points inside a true object" in out and "TRA 1.0000" in out and "scored as points" in err


def test_a_time_axis_in_seconds_without_frames_is_refused(tmp_path: Path) -> None:
    import geff

    g = nx.relabel_nodes(_graph_in_pixels(), {"a": 0, "b": 1, "c": 2, "d": 3})
    for n in g.nodes:
        g.nodes[n]["t"] *= 300  # the time of each node, not its frame: 0, 300, 600 s look like frame numbers
    geff.write(g, tmp_path / "s.geff", axis_names=["t", "y", "x"], axis_units=["second", None, None],
               axis_types=["time", "space", "space"])  # fmt: skip
    with pytest.raises(InputFileError, match="the time axis 't' is in second, and the nodes have no frame"):
        read_track_graph(tmp_path / "s.geff", voxel_size=VS)
    for n in g.nodes:
        g.nodes[n]["frame"] = g.nodes[n]["t"] // 300
    geff.write(g, tmp_path / "f.geff", axis_names=["t", "y", "x"], axis_units=["second", None, None],
               axis_types=["time", "space", "space"])  # fmt: skip
    assert read_track_graph(tmp_path / "f.geff", voxel_size=VS).t.tolist() == [0, 1, 2, 2]
