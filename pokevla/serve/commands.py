"""`pokevla serve` (a policy server), `pokevla serve bench` (its latency) and `pokevla export onnx`."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    sv = subparsers.add_parser("serve", help="serve a checkpoint to robots over WebSocket + msgpack (`serve bench`: latency)")
    _backend_args(sv)
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for the network)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    sv.add_argument("--max-batch", type=int, default=1, help="requests of concurrent clients run together, up to N (default 1)")
    sv.add_argument("--max-frame-mb", type=float, default=8.0, help="largest accepted message in MiB (default 8)")
    sv.add_argument("--api-key-file", help="a file holding the API key clients must send (Authorization: Bearer KEY)")
    sv.set_defaults(func=_serve)
    sub = sv.add_subparsers(dest="serve_command", metavar="SUBCOMMAND")
    bench = sub.add_parser("bench", help="latency (client round trip, queueing, model) and throughput of the server")
    _backend_args(bench, choose_backend=False)
    bench.add_argument("--onnx", metavar="DIR", help="also bench the ONNX backend from this `pokevla export onnx` folder")
    bench.add_argument("--requests", type=int, default=200, help="timed requests per client (default 200)")
    bench.add_argument("--warmup", type=int, default=20, help="untimed requests first (default 20)")
    bench.add_argument("--clients", default="1,4", help="concurrent clients to measure, e.g. 1,4,8 (default 1,4)")
    bench.add_argument("--json", metavar="FILE", help="write the results here")
    bench.set_defaults(func=_bench)

    ex = subparsers.add_parser("export", help="export a checkpoint for deployment (ONNX)")
    exsub = ex.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    onnx = exsub.add_parser("onnx", help="ONNX graph with LoRA merged and static shapes, parity-checked against PyTorch")
    onnx.add_argument("--checkpoint", required=True, help="a training run directory (its last checkpoint) or a checkpoint folder")
    onnx.add_argument("--out", required=True, help="output folder (the graph, the checkpoint's statistics and tokenizer, parity.json)")
    onnx.add_argument("--image-size", type=int, default=None, help="input image size (default: the training data's)")
    onnx.add_argument("--prompt-tokens", type=int, default=None, help="static prompt length in tokens (default: 1.5x the longest training instruction, else 128)")
    onnx.add_argument("--dataset", help="a demonstration dataset whose frames serve as the parity check's observations "
                                        "(default: random images and states)")
    onnx.add_argument("--parity-samples", type=int, default=8, help="observations in the parity check (default 8)")
    onnx.set_defaults(func=_export_onnx)

    merge = exsub.add_parser("merged", help="a PyTorch checkpoint with LoRA adapters merged into the weights")
    merge.add_argument("--checkpoint", required=True)
    merge.add_argument("--out", required=True)
    merge.set_defaults(func=_export_merged)


def _backend_args(p: argparse.ArgumentParser, choose_backend: bool = True) -> None:
    p.add_argument("--checkpoint", help="a training run directory (its last checkpoint), a checkpoint folder, or with "
                                        "--backend onnx a `pokevla export onnx` folder")
    if choose_backend:
        p.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=1, help="model threads (default 1)")
    p.add_argument("--image-size", type=int, default=None,
                   help="image size requests must have (default: the checkpoint's training data's)")


def make_backend(args: argparse.Namespace):
    from pokevla.common.errors import PokeVLAError

    if not args.checkpoint:
        raise PokeVLAError("--checkpoint is required")
    if args.threads < 1:
        raise PokeVLAError(f"--threads must be at least 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)  # the processor's tensor ops run on torch in both backends
    if args.backend == "onnx":
        from pokevla.serve.onnx import OnnxBackend

        return OnnxBackend(args.checkpoint, threads=args.threads)

    from pokevla.serve.backend import TorchBackend
    from pokevla.train.checkpoints import resolve_model_dir

    return TorchBackend(resolve_model_dir(args.checkpoint), device=args.device, image_size=args.image_size,
                        threads=args.threads)


def _serve(args: argparse.Namespace) -> int:
    from pokevla.common.errors import PokeVLAError
    from pokevla.serve.client import read_api_key
    from pokevla.serve.server import ServerConfig, run_server

    if args.max_batch < 1:
        raise PokeVLAError(f"--max-batch must be at least 1, got {args.max_batch}")
    api_key = read_api_key(args.api_key_file) if args.api_key_file else None
    backend = make_backend(args)
    config = ServerConfig(host=args.host, port=args.port, max_batch=args.max_batch,
                          max_frame_bytes=int(args.max_frame_mb * (1 << 20)), api_key=api_key)
    try:
        run_server(backend, config, announce=lambda line: print(line, flush=True))
    except OSError as e:
        raise PokeVLAError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}; pick another --port") from None
    return 0


def _bench(args: argparse.Namespace) -> int:
    from pokevla.common.errors import PokeVLAError
    from pokevla.serve.bench import BenchConfig, format_table, run_bench

    try:
        clients = tuple(int(c) for c in args.clients.split(","))
    except ValueError:
        raise PokeVLAError(f"--clients takes comma-separated counts, e.g. 1,4; got {args.clients!r}") from None
    if min(clients) < 1 or args.requests < 1 or args.warmup < 0:
        raise PokeVLAError("--clients and --requests must be at least 1, --warmup at least 0")
    config = BenchConfig(checkpoint=args.checkpoint, onnx=args.onnx, device=args.device, threads=args.threads,
                         image_size=args.image_size, requests=args.requests, warmup=args.warmup, clients=clients)
    results = run_bench(config, json_path=args.json)
    print(format_table(results))
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from pokevla.serve.onnx import ExportConfig, export_onnx

    report = export_onnx(ExportConfig(checkpoint=args.checkpoint, out=args.out, image_size=args.image_size,
                                      prompt_tokens=args.prompt_tokens, dataset=args.dataset,
                                      parity_samples=args.parity_samples))
    print(f"exported {args.out}/model.onnx; parity over {report['samples']} observations: "
          f"max abs action error {report['max_abs_error']:.2e} (raw units)")
    return 0


def _export_merged(args: argparse.Namespace) -> int:
    from pokevla.model.lora import merged_copy
    from pokevla.model.pokevla import PokeVLA
    from pokevla.train.checkpoints import resolve_model_dir

    model_dir = resolve_model_dir(args.checkpoint)
    merged, count = merged_copy(PokeVLA.from_pretrained(model_dir))
    merged.save_pretrained(args.out)
    _copy_training_record(model_dir, args.out)
    print(f"{args.out}: {count} LoRA adapter{'s' if count != 1 else ''} merged into the weights")
    return 0


def _copy_training_record(model_dir, out) -> None:
    import shutil
    from pathlib import Path

    if (Path(model_dir) / "training.json").is_file():
        shutil.copy2(Path(model_dir) / "training.json", Path(out) / "training.json")
