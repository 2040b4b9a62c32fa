#!/usr/bin/env escript
%%! -connect_all false
%% Runs one pg scenario on real OTP nodes and prints what every node sees, for Ember's
%% differential test (tests/registry/test_pg_otp.py). Written for Ember; reads a scenario file:
%%   nodes a b c | scope NAME | spawn NODE LABEL | join LABEL GROUP | join2 LABEL GROUP
%%   leave LABEL GROUP TAG | exit LABEL | isolate NODE | heal | sync | dump TAG
%% (``scope NAME`` starts scope NAME on every node and makes it the one the next steps use).
%% and prints "RESULT TAG VALUE" for leaves and "VIEW TAG NODE GROUP LABEL,LABEL,..." for dumps.
-mode(compile).

main([File]) ->
    {ok, _} = net_kernel:start([list_to_atom("ember_pg_ctl_" ++ os:getpid()), shortnames]),
    Cookie = atom_to_list(erlang:get_cookie()),
    {ok, Bin} = file:read_file(File),
    Steps = [string:lexemes(L, " ") || L <- string:lexemes(binary_to_list(Bin), "\n")],
    [["nodes" | Names] | Rest] = Steps,
    Peers = [start_peer(N, Cookie) || N <- Names],
    connect_all(Peers),
    put(scope, ember),
    run(Rest, Peers, #{}, 0),
    halt(0).

start_peer(Name, Cookie) ->
    {ok, _Pid, Node} = peer:start_link(#{
        name => list_to_atom(Name ++ "_" ++ os:getpid()),
        connection => 0,
        args => ["-setcookie", Cookie, "-kernel", "dist_auto_connect", "never",
                 "-connect_all", "false"]}),
    true = net_kernel:connect_node(Node),
    {Name, Node}.

connect_all(Peers) ->
    [true = rpc:call(A, net_kernel, connect_node, [B]) || {_, A} <- Peers, {_, B} <- Peers, A < B],
    ok.

run([], _Peers, _Pids, _N) -> ok;
run([Step | Rest], Peers, Pids, N) ->
    Pids2 = step(Step, Peers, Pids, N),
    run(Rest, Peers, Pids2, N + 1).

step(["scope", Name], Peers, Pids, _) ->
    Scope = list_to_atom(Name),
    [{ok, _} = rpc:call(P, pg, start, [Scope]) || {_, P} <- Peers],
    put(scope, Scope),
    sync(Peers),
    Pids;
step(["spawn", Node, Label], Peers, Pids, _) ->
    Pid = spawn(proplists:get_value(Node, Peers), timer, sleep, [infinity]),
    Pids#{Label => Pid};
step(["join", Label, Group], _, Pids, _) ->
    Pid = maps:get(Label, Pids),
    ok = rpc:call(node(Pid), pg, join, [get(scope), list_to_binary(Group), Pid]),
    Pids;
step(["join2", Label, Group], _, Pids, _) ->
    Pid = maps:get(Label, Pids),
    ok = rpc:call(node(Pid), pg, join, [get(scope), list_to_binary(Group), [Pid, Pid]]),
    Pids;
step(["leave", Label, Group, Tag], _, Pids, _) ->
    Pid = maps:get(Label, Pids),
    Result = rpc:call(node(Pid), pg, leave, [get(scope), list_to_binary(Group), Pid]),
    io:format("RESULT ~s ~s~n", [Tag, Result]),
    Pids;
step(["exit", Label], _, Pids, _) ->
    Pid = maps:get(Label, Pids),
    Ref = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', Ref, process, Pid, _} -> ok end,
    Pids;
step(["isolate", Name], Peers, Pids, _) ->
    Node = proplists:get_value(Name, Peers),
    [rpc:call(Node, erlang, disconnect_node, [Other]) || {_, Other} <- Peers, Other =/= Node],
    Pids;
step(["heal"], Peers, Pids, _) ->
    connect_all(Peers),
    Pids;
step(["sync"], Peers, Pids, _) ->
    sync(Peers),
    Pids;
step(["dump", Tag], Peers, Pids, _) ->
    Labels = maps:fold(fun(L, P, Acc) -> Acc#{P => L} end, #{}, Pids),
    [dump(Tag, Name, Node, Labels) || {Name, Node} <- Peers],
    Pids.

dump(Tag, Name, Node, Labels) ->
    Groups = lists:sort(rpc:call(Node, pg, which_groups, [get(scope)])),
    [begin
         Members = rpc:call(Node, pg, get_members, [get(scope), G]),
         Ls = lists:sort([maps:get(P, Labels) || P <- Members]),
         io:format("VIEW ~s ~s ~s ~s~n", [Tag, Name, G, lists:join(",", Ls)])
     end || G <- Groups],
    ok.

%% Let every scope handle what is in flight: rounds of a call to each scope (it answers once
%% it has handled every message queued before it), with a pause for messages between nodes.
sync(Peers) ->
    [begin
         [sys:get_state({get(scope), Node}) || {_, Node} <- Peers],
         timer:sleep(30)
     end || _ <- lists:seq(1, 8)],
    ok.
