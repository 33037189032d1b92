"""What `memeflow watch` decides without a service: which changed file a folder's walk
would collect, which mounts are polled, and which folders to prune for paths gone."""

from pathlib import Path

from memeflow.client.files import scan_paths, selected
from memeflow.client.observers import choose_mode, fs_type, is_network
from memeflow.client.pending import prune_folders

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/nas rw,relatime shared:20 - nfs4 nas:/export rw,vers=4.2
41 22 0:36 / /mnt/my\\040share rw,relatime - cifs //srv/share rw
42 40 0:37 / /mnt/nas/local rw - tmpfs tmpfs rw
43 22 0:38 / /home/me/remote rw,nosuid - fuse.sshfs me@host:/ rw
"""


def test_the_deepest_mount_gives_the_type_and_network_ones_are_polled() -> None:
    assert fs_type("/mnt/nas/memes", MOUNTINFO) == "nfs4"
    assert fs_type("/mnt/nas/local/memes", MOUNTINFO) == "tmpfs"
    assert fs_type("/mnt/my share/x", MOUNTINFO) == "cifs"
    assert fs_type("/mnt/nasty", MOUNTINFO) == "ext4"  # a prefix of a name is not a mount
    assert fs_type("/home/me/remote/a", MOUNTINFO) == "fuse.sshfs"
    assert [is_network(k) for k in ("nfs4", "cifs", "fuse.sshfs", "smb3", "ext4", "tmpfs")] \
        == [True, True, True, True, False, False]


def test_poll_is_chosen_when_asked(tmp_path) -> None:
    mode = choose_mode(str(tmp_path), poll=True)
    assert mode.polling and mode.describe(2.5) == f"watching {tmp_path} by polling every 2.5 s " \
        "(--poll)"


def test_selected_agrees_with_the_walk(tmp_path) -> None:
    """Every file of a tree with hidden folders, a system folder and ignore files below
    the root: selected() says yes exactly for the files the walk collects."""
    for path in ("a.jpg", "a.txt", ".b.jpg", "x/c.png", "x/.hid/d.jpg", "x/keep/e.jpg",
                 "x/skip/f.jpg", "x/g.gif", "@eaDir/h.jpg", "y/raw.jpg", "y/i.jpg"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
    (tmp_path / "x" / ".memeflowignore").write_text("skip/\n*.gif\n")
    (tmp_path / ".memeflowignore").write_text("raw.jpg\n")
    walked = {str(p) for p in scan_paths([tmp_path]).files}
    every = {str(p) for p in tmp_path.rglob("*") if p.is_file()}
    assert {p for p in every if selected(p, tmp_path)} == walked
    assert walked == {str(tmp_path / p) for p in ("a.jpg", "x/c.png", "x/keep/e.jpg",
                                                  "y/i.jpg")}
    assert selected(tmp_path / ".b.jpg", tmp_path, include_hidden=True)
    assert not selected(Path("/elsewhere/a.jpg"), tmp_path)


def test_paths_gone_are_pruned_from_the_deepest_folder_left(tmp_path) -> None:
    root = str(tmp_path)
    (tmp_path / "kept").mkdir()
    (tmp_path / "again.jpg").write_bytes(b"x")
    gone = [(f"{root}/kept/a.jpg", root), (f"{root}/kept/b.jpg", root),
            (f"{root}/removed/deep/c.jpg", root), (f"{root}/again.jpg", root)]
    assert prune_folders(gone) == [root]  # `kept` lies inside the root, pruned with it
    assert prune_folders(gone[:2]) == [f"{root}/kept"]  # 2 deletions, one folder to list
    assert prune_folders(gone[3:]) == []  # it is there again: a new file, not a deletion
