"""member add / remove / update / promote / list."""

from __future__ import annotations

from api.cli.command import Command, bad_args, parse_hex_id
from api.cli.context import Ctx
from api.cli.flags import BOOL, STRING, Flag, Parsed
from api.cli.output.simple import SimplePrinter
from api.cli.output.text import go_quote
from api.proto import rpc_pb2

__all__ = ["COMMANDS"]


def _urls(text: str) -> list[str]:
    return [u for u in text.split(",") if u]


def _member_id(p: Parsed) -> int:
    if len(p.args) != 1:
        raise bad_args("member ID is not provided")
    return parse_hex_id(p.args[0], what="member", unsigned=True)


async def _add(ctx: Ctx, p: Parsed) -> None:
    if len(p.args) < 1:
        raise bad_args("member name not provided")
    if len(p.args) > 1:
        raise bad_args(f"too many arguments, did you mean --peer-urls={p.args[1]}")
    name = p.args[0]
    peer_urls = _urls(str(p.values["peer_urls"]))
    if not peer_urls:
        raise bad_args("member peer urls not provided")
    printer = ctx.printer()
    req = rpc_pb2.MemberAddRequest(peerURLs=peer_urls, isLearner=bool(p.values["learner"]))
    r = await ctx.unary(lambda s: s.cluster.MemberAdd, req, read_only=False)
    printer.member_add(r)
    if type(printer) is not SimplePrinter:
        return
    conf = [f"{name if m.ID == r.member.ID else m.name}={u}" for m in r.members for u in m.peerURLs]
    ctx.out.line()
    ctx.out.line(f"ETCD_NAME={go_quote(name)}")
    ctx.out.line(f"ETCD_INITIAL_CLUSTER={go_quote(','.join(conf))}")
    ctx.out.line(f"ETCD_INITIAL_ADVERTISE_PEER_URLS={go_quote(','.join(r.member.peerURLs))}")
    ctx.out.line('ETCD_INITIAL_CLUSTER_STATE="existing"')


async def _remove(ctx: Ctx, p: Parsed) -> None:
    member_id = _member_id(p)
    printer = ctx.printer()
    req = rpc_pb2.MemberRemoveRequest(ID=member_id)
    r = await ctx.unary(lambda s: s.cluster.MemberRemove, req, read_only=False)
    printer.member_remove(member_id, r)


async def _update(ctx: Ctx, p: Parsed) -> None:
    member_id = _member_id(p)
    peer_urls = _urls(str(p.values["peer_urls"]))
    if not peer_urls:
        raise bad_args("member peer urls not provided")
    printer = ctx.printer()
    req = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=peer_urls)
    r = await ctx.unary(lambda s: s.cluster.MemberUpdate, req, read_only=False)
    printer.member_update(member_id, r)


async def _promote(ctx: Ctx, p: Parsed) -> None:
    member_id = _member_id(p)
    printer = ctx.printer()
    req = rpc_pb2.MemberPromoteRequest(ID=member_id)
    r = await ctx.unary(lambda s: s.cluster.MemberPromote, req, read_only=False)
    printer.member_promote(member_id, r)


async def _list(ctx: Ctx, p: Parsed) -> None:
    printer = ctx.printer()
    r = await ctx.unary(lambda s: s.cluster.MemberList, rpc_pb2.MemberListRequest(), read_only=True)
    printer.member_list(r)


COMMANDS = [
    Command(("member", "add"), "Adds a member into the cluster", "etcdctl member add <memberName> [options] [flags]",
            _add, (Flag("peer-urls", STRING, "", "comma separated peer URLs for the new member."),
                   Flag("learner", BOOL, False, "indicates if the new member is raft learner"))),
    Command(("member", "remove"), "Removes a member from the cluster", "etcdctl member remove <memberID> [flags]", _remove),
    Command(("member", "update"), "Updates a member in the cluster", "etcdctl member update <memberID> [options] [flags]",
            _update, (Flag("peer-urls", STRING, "", "comma separated peer URLs for the updated member."),)),
    Command(("member", "list"), "Lists all members in the cluster", "etcdctl member list [flags]", _list),
    Command(("member", "promote"), "Promotes a non-voting member in the cluster",
            "etcdctl member promote <memberID> [flags]", _promote),
]
