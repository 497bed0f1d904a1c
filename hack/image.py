#!/usr/bin/env python3
"""Container images without Docker: docker-archive tarballs (`docker save` format) written from
a root directory assembled here, for `skopeo copy docker-archive:... docker://...`.

    hack/image.py operator --binary PATH --name REF --out TAR   the operator image
    hack/image.py busybox --name REF --out TAR                  Debian's busybox-static
    hack/image.py pause --binary PATH --name REF --out TAR      the sandbox image
    hack/image.py layout                                        the operator image's layout (JSON)

The operator image has the layout of the Dockerfile's final stage, read from the Dockerfile
itself (the one definition): the binary where its `COPY --from=builder` puts it, the symlinks
of the builder stage a directory `COPY` takes over (`kubectl-qjob`), its `USER`,
`ENTRYPOINT` and `EXPOSE`, the shared libraries the binary needs (the distroless base's role),
and an /etc/passwd naming the user. tests/image.rs checks that the two agree.
"""
import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def dockerfile_layout(path):
    """The final stage of the Dockerfile: binary path, symlinks, user, entrypoint, exposed ports.

    Symlinks: the `ln -s TARGET DIR/NAME` of any stage, for each `COPY --from=... DIR/ DEST/` of
    the final stage (a directory copy keeps them symlinks): DEST/NAME -> TARGET."""
    final, made = [], {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for target, link in re.findall(r"ln -s (\S+) (\S+)", line):
            made[link] = target
        if re.match(r"(?i)^FROM\s", line):
            final = []
        final.append(line)
    layout = {"binary": None, "links": {}, "user": None, "entrypoint": None, "expose": []}
    for line in final:
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "COPY" and rest.startswith("--from=") and rest.split()[-2].endswith("/"):
            src, dest = rest.split()[-2:]
            for link, target in made.items():
                if os.path.dirname(link) + "/" == src:
                    layout["links"][dest.rstrip("/") + "/" + os.path.basename(link)] = target
        elif word == "COPY" and rest.startswith("--from="):
            layout["binary"] = rest.split()[-1]
        elif word == "USER":
            layout["user"] = rest
        elif word == "ENTRYPOINT":
            layout["entrypoint"] = json.loads(rest)
        elif word == "EXPOSE":
            layout["expose"] += rest.split()
    missing = [k for k, v in layout.items() if v in (None, []) and k != "links"]
    if missing:
        sys.exit(f"image: the Dockerfile's final stage lacks {', '.join(missing)}")
    return layout


def shared_libraries(binary):
    """Absolute paths of the libraries (and the loader) `ldd` lists for `binary`."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if out.returncode != 0:
        if "not a dynamic executable" in out.stdout + out.stderr:
            return []
        sys.exit(f"image: ldd {binary}: {out.stderr.strip()}")
    libs = []
    for line in out.stdout.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
        elif "not found" in line:
            sys.exit(f"image: {binary} needs a library that is not here: {line.strip()}")
    return libs


def install(src, rootfs, dest, mode=0o755):
    target = os.path.join(rootfs, dest.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(src, target)
    os.chmod(target, mode)


def write(rootfs, dest, text, mode=0o644):
    target = os.path.join(rootfs, dest.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(target, mode)


def tmp_dir(rootfs):
    os.makedirs(os.path.join(rootfs, "tmp"), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)


def operator_rootfs(rootfs, binary, layout):
    install(binary, rootfs, layout["binary"])
    for link, target in layout["links"].items():
        path = os.path.join(rootfs, link.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)
    for lib in shared_libraries(binary):
        install(os.path.realpath(lib), rootfs, lib)
    uid, _, gid = layout["user"].partition(":")
    gid = gid or uid
    # distroless' users: root, nobody and nonroot (65532)
    write(rootfs, "/etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          f"nonroot:x:{uid}:{gid}:nonroot:/home/nonroot:/sbin/nologin\n")
    write(rootfs, "/etc/group", f"root:x:0:\nnobody:x:65534:\nnonroot:x:{gid}:\n")
    os.makedirs(os.path.join(rootfs, "home/nonroot"), exist_ok=True)
    tmp_dir(rootfs)
    return {"Entrypoint": layout["entrypoint"], "User": layout["user"],
            "ExposedPorts": {p if "/" in p else p + "/tcp": {} for p in layout["expose"]}}


def busybox_rootfs(rootfs):
    busybox = "/bin/busybox"
    if not os.path.exists(busybox) or shared_libraries(busybox):
        sys.exit("image: needs a static /bin/busybox (Debian's busybox-static)")
    install(busybox, rootfs, "/bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    write(rootfs, "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    write(rootfs, "/etc/group", "root:x:0:\nnobody:x:65534:\n")
    for d in ("root", "dev", "proc", "sys", "etc"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    tmp_dir(rootfs)
    return {"Cmd": ["sh"]}


def pause_rootfs(rootfs, binary):
    install(binary, rootfs, "/pause")
    return {"Entrypoint": ["/pause"]}


def docker_archive(rootfs, name, config, out):
    """Write a one-layer docker-archive of `rootfs` tagged `name` (deterministic: root owner,
    mtime 0)."""
    layer_buf = io.BytesIO()

    def owned_by_root(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = 0
        return ti

    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for entry in sorted(os.listdir(rootfs)):
            t.add(os.path.join(rootfs, entry), arcname=entry, filter=owned_by_root)
    layer = layer_buf.getvalue()
    layer_id = hashlib.sha256(layer).hexdigest()
    image_config = {
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": [PATH_ENV], "WorkingDir": "/", **config},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/image.py"}],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_id = hashlib.sha256(config_bytes).hexdigest()
    repo, tag = name.rsplit(":", 1)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with tarfile.open(out + ".tmp", "w") as t:
        def add(path, data):
            ti = tarfile.TarInfo(path)
            ti.size, ti.mtime = len(data), 0
            t.addfile(ti, io.BytesIO(data))
        add(f"{layer_id}/layer.tar", layer)
        add(f"{config_id}.json", config_bytes)
        add("manifest.json", json.dumps([{"Config": f"{config_id}.json", "RepoTags": [name],
                                           "Layers": [f"{layer_id}/layer.tar"]}]).encode())
        add("repositories", json.dumps({repo: {tag: layer_id}}).encode())
    os.replace(out + ".tmp", out)
    print(f"{out}: {name} (config sha256:{config_id})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["operator", "busybox", "pause", "layout"])
    parser.add_argument("--binary")
    parser.add_argument("--name")
    parser.add_argument("--out")
    parser.add_argument("--dockerfile", default=os.path.join(ROOT, "Dockerfile"))
    args = parser.parse_args()
    if args.kind == "layout":
        print(json.dumps(dockerfile_layout(args.dockerfile), indent=2))
        return
    if not args.name or not args.out or (args.kind != "busybox" and not args.binary):
        parser.error(f"{args.kind} needs --name, --out" + ("" if args.kind == "busybox" else " and --binary"))
    if ":" not in args.name.rsplit("/", 1)[-1]:
        args.name += ":latest"
    with tempfile.TemporaryDirectory() as rootfs:
        if args.kind == "operator":
            config = operator_rootfs(rootfs, args.binary, dockerfile_layout(args.dockerfile))
        elif args.kind == "busybox":
            config = busybox_rootfs(rootfs)
        else:
            config = pause_rootfs(rootfs, args.binary)
        docker_archive(rootfs, args.name, config, args.out)


if __name__ == "__main__":
    main()
