//! Generators of every record and message, within what the protocol allows.

use bytes::Bytes;
use corral_proto::records::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, ChildrenResponse, ClientInfo, Create2Response, CreateRequest,
    CreateResponse, CreateTtlRequest, DeleteRequest, ErrorResponse, GetAclResponse, GetAllChildrenNumberResponse,
    GetChildren2Response, GetDataResponse, PathAndWatch, PathRequest, ReconfigRequest, SaslToken, SetAclRequest,
    SetDataRequest, SetWatches, SetWatches2, WatchesRequest, WhoAmIResponse,
};
use corral_proto::{
    Acl, AddWatchMode, ConnectRequest, ConnectResponse, ErrorCode, EventType, Id, KeeperState, MultiOp, MultiRequest,
    MultiResponse, MultiResult, OpCode, Perms, Request, Response, Stat, WatcherEvent, WatcherType,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Full-range `i32`, with the edges (and the null marker −1) drawn often.
pub(crate) fn int() -> impl Strategy<Value = i32> {
    prop_oneof![
        1 => Just(i32::MIN),
        1 => Just(i32::MAX),
        1 => Just(0),
        1 => Just(-1),
        8 => any::<i32>(),
    ]
}

/// Full-range `i64`, with the edges drawn often.
pub(crate) fn long() -> impl Strategy<Value = i64> {
    prop_oneof![
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => Just(0),
        1 => Just(-1),
        8 => any::<i64>(),
    ]
}

/// Arbitrary Unicode (every `char`, NUL, controls and non-BMP included), plus path-like strings.
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        4 => vec(any::<char>(), 0..16).prop_map(|cs| cs.into_iter().collect::<String>()),
        2 => "(/[a-z0-9._-]{1,8}){1,4}",
    ]
}

/// A nullable string: null, empty, or text.
pub(crate) fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        3 => text().prop_map(Some),
    ]
}

/// Raw bytes, empty included.
pub(crate) fn raw() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes::from)
}

/// A nullable buffer: null vs empty vs data, which the protocol keeps apart.
pub(crate) fn opt_raw() -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Bytes::new())),
        3 => raw().prop_map(Some),
    ]
}

pub(crate) fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..5)
}

pub(crate) fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        2 => prop::sample::select(KNOWN_ERRORS).prop_map(ErrorCode::from),
        1 => int().prop_map(ErrorCode::from),
    ]
}

pub(crate) fn op_code() -> impl Strategy<Value = OpCode> {
    prop_oneof![
        2 => prop::sample::select(KNOWN_OPS).prop_map(OpCode::from),
        1 => int().prop_map(OpCode::from),
    ]
}

prop_compose! {
    pub(crate) fn stat()(
        czxid in long(), mzxid in long(), ctime in long(), mtime in long(),
        version in int(), cversion in int(), aversion in int(), ephemeral_owner in long(),
        data_length in int(), num_children in int(), pzxid in long(),
    ) -> Stat {
        Stat { czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeral_owner, data_length, num_children, pzxid }
    }
}

prop_compose! {
    pub(crate) fn id()(scheme in text(), id in text()) -> Id {
        Id { scheme, id }
    }
}

prop_compose! {
    pub(crate) fn acl()(perms in int(), id in id()) -> Acl {
        Acl { perms: Perms(perms), id }
    }
}

pub(crate) fn acls() -> impl Strategy<Value = Vec<Acl>> {
    vec(acl(), 0..4)
}

prop_compose! {
    pub(crate) fn create_request()(path in text(), data in opt_raw(), acl in acls(), flags in int()) -> CreateRequest {
        CreateRequest { path, data, acl, flags }
    }
}

prop_compose! {
    pub(crate) fn create_ttl_request()(path in text(), data in opt_raw(), acl in acls(), flags in int(), ttl in long())
        -> CreateTtlRequest {
        CreateTtlRequest { path, data, acl, flags, ttl }
    }
}

prop_compose! {
    pub(crate) fn delete_request()(path in text(), version in int()) -> DeleteRequest {
        DeleteRequest { path, version }
    }
}

prop_compose! {
    pub(crate) fn path_and_watch()(path in text(), watch in any::<bool>()) -> PathAndWatch {
        PathAndWatch { path, watch }
    }
}

prop_compose! {
    pub(crate) fn path_request()(path in text()) -> PathRequest {
        PathRequest { path }
    }
}

prop_compose! {
    pub(crate) fn set_data_request()(path in text(), data in opt_raw(), version in int()) -> SetDataRequest {
        SetDataRequest { path, data, version }
    }
}

prop_compose! {
    pub(crate) fn set_acl_request()(path in text(), acl in acls(), version in int()) -> SetAclRequest {
        SetAclRequest { path, acl, version }
    }
}

prop_compose! {
    pub(crate) fn check_version_request()(path in text(), version in int()) -> CheckVersionRequest {
        CheckVersionRequest { path, version }
    }
}

prop_compose! {
    pub(crate) fn watches_request()(path in text(), watcher_type in int()) -> WatchesRequest {
        WatchesRequest { path, watcher_type: WatcherType::from(watcher_type) }
    }
}

prop_compose! {
    pub(crate) fn add_watch_request()(path in text(), mode in int()) -> AddWatchRequest {
        AddWatchRequest { path, mode: AddWatchMode::from(mode) }
    }
}

prop_compose! {
    pub(crate) fn auth_packet()(auth_type in int(), scheme in text(), auth in raw()) -> AuthPacket {
        AuthPacket { auth_type, scheme, auth }
    }
}

prop_compose! {
    pub(crate) fn sasl_token()(token in raw()) -> SaslToken {
        SaslToken { token }
    }
}

prop_compose! {
    pub(crate) fn reconfig_request()(
        joining_servers in opt_text(), leaving_servers in opt_text(), new_members in opt_text(),
        cur_config_id in long(),
    ) -> ReconfigRequest {
        ReconfigRequest { joining_servers, leaving_servers, new_members, cur_config_id }
    }
}

prop_compose! {
    pub(crate) fn set_watches()(
        relative_zxid in long(), data_watches in strings(), exist_watches in strings(), child_watches in strings(),
    ) -> SetWatches {
        SetWatches { relative_zxid, data_watches, exist_watches, child_watches }
    }
}

prop_compose! {
    pub(crate) fn set_watches2()(
        relative_zxid in long(), data_watches in strings(), exist_watches in strings(), child_watches in strings(),
        persistent_watches in strings(), persistent_recursive_watches in strings(),
    ) -> SetWatches2 {
        SetWatches2 {
            relative_zxid, data_watches, exist_watches, child_watches, persistent_watches,
            persistent_recursive_watches,
        }
    }
}

prop_compose! {
    pub(crate) fn create_response()(path in text()) -> CreateResponse {
        CreateResponse { path }
    }
}

prop_compose! {
    pub(crate) fn create2_response()(path in text(), stat in stat()) -> Create2Response {
        Create2Response { path, stat }
    }
}

prop_compose! {
    pub(crate) fn get_data_response()(data in opt_raw(), stat in stat()) -> GetDataResponse {
        GetDataResponse { data, stat }
    }
}

prop_compose! {
    pub(crate) fn get_acl_response()(acl in acls(), stat in stat()) -> GetAclResponse {
        GetAclResponse { acl, stat }
    }
}

prop_compose! {
    pub(crate) fn children_response()(children in strings()) -> ChildrenResponse {
        ChildrenResponse { children }
    }
}

prop_compose! {
    pub(crate) fn children2_response()(children in strings(), stat in stat()) -> GetChildren2Response {
        GetChildren2Response { children, stat }
    }
}

prop_compose! {
    pub(crate) fn client_info()(auth_scheme in text(), user in text()) -> ClientInfo {
        ClientInfo { auth_scheme, user }
    }
}

prop_compose! {
    pub(crate) fn who_am_i_response()(client_info in vec(client_info(), 0..4)) -> WhoAmIResponse {
        WhoAmIResponse { client_info }
    }
}

prop_compose! {
    pub(crate) fn watcher_event()(event_type in int(), state in int(), path in text()) -> WatcherEvent {
        WatcherEvent { event_type: EventType::from(event_type), state: KeeperState::from(state), path }
    }
}

prop_compose! {
    pub(crate) fn connect_request()(
        protocol_version in int(), last_zxid_seen in long(), timeout in int(), session_id in long(),
        passwd in raw(), read_only in proptest::option::of(any::<bool>()),
    ) -> ConnectRequest {
        ConnectRequest { protocol_version, last_zxid_seen, timeout, session_id, passwd, read_only }
    }
}

prop_compose! {
    pub(crate) fn connect_response()(
        protocol_version in int(), timeout in int(), session_id in long(), passwd in raw(),
        read_only in proptest::option::of(any::<bool>()),
    ) -> ConnectResponse {
        ConnectResponse { protocol_version, timeout, session_id, passwd, read_only }
    }
}

/// Every kind of multi operation.
pub(crate) fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        create_request().prop_map(MultiOp::Create),
        create_request().prop_map(MultiOp::Create2),
        create_request().prop_map(MultiOp::CreateContainer),
        create_ttl_request().prop_map(MultiOp::CreateTtl),
        delete_request().prop_map(MultiOp::Delete),
        set_data_request().prop_map(MultiOp::SetData),
        check_version_request().prop_map(MultiOp::Check),
        path_and_watch().prop_map(MultiOp::GetData),
        path_and_watch().prop_map(MultiOp::GetChildren),
    ]
}

pub(crate) fn multi_request() -> impl Strategy<Value = MultiRequest> {
    vec(multi_op(), 0..7).prop_map(|ops| MultiRequest { ops })
}

/// Every kind of multi result, errors with any code (Ok and unknown codes included).
pub(crate) fn multi_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        create_response().prop_map(MultiResult::Create),
        create2_response().prop_map(MultiResult::Create2),
        Just(MultiResult::Delete),
        stat().prop_map(MultiResult::SetData),
        Just(MultiResult::Check),
        get_data_response().prop_map(MultiResult::GetData),
        children_response().prop_map(MultiResult::GetChildren),
        error_code().prop_map(MultiResult::Error),
    ]
}

pub(crate) fn multi_response() -> impl Strategy<Value = MultiResponse> {
    vec(multi_result(), 0..7).prop_map(|results| MultiResponse { results })
}

/// Every `Request` variant.
pub(crate) fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create_request().prop_map(Request::Create),
        create_request().prop_map(Request::Create2),
        create_request().prop_map(Request::CreateContainer),
        create_ttl_request().prop_map(Request::CreateTtl),
        delete_request().prop_map(Request::Delete),
        path_and_watch().prop_map(Request::Exists),
        path_and_watch().prop_map(Request::GetData),
        set_data_request().prop_map(Request::SetData),
        path_request().prop_map(Request::GetAcl),
        set_acl_request().prop_map(Request::SetAcl),
        path_and_watch().prop_map(Request::GetChildren),
        path_request().prop_map(Request::Sync),
        Just(Request::Ping),
        path_and_watch().prop_map(Request::GetChildren2),
        check_version_request().prop_map(Request::Check),
        multi_request().prop_map(Request::Multi),
        reconfig_request().prop_map(Request::Reconfig),
        watches_request().prop_map(Request::CheckWatches),
        watches_request().prop_map(Request::RemoveWatches),
        raw().prop_map(Request::DeleteContainer),
        multi_request().prop_map(Request::MultiRead),
        auth_packet().prop_map(Request::Auth),
        set_watches().prop_map(Request::SetWatches),
        sasl_token().prop_map(Request::Sasl),
        path_request().prop_map(Request::GetEphemerals),
        path_request().prop_map(Request::GetAllChildrenNumber),
        set_watches2().prop_map(Request::SetWatches2),
        add_watch_request().prop_map(Request::AddWatch),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

/// Every `Response` variant, paired with each opcode whose reply decodes to it.
pub(crate) fn response() -> impl Strategy<Value = (OpCode, Response)> {
    use OpCode as O;
    fn with<S: Strategy<Value = Response> + 'static>(
        ops: &'static [OpCode],
        body: S,
    ) -> impl Strategy<Value = (OpCode, Response)> {
        (prop::sample::select(ops), body)
    }
    prop_oneof![
        with(EMPTY_REPLY_OPS, Just(Response::Empty)),
        with(&[O::Create], create_response().prop_map(Response::Create)),
        with(&[O::Create2, O::CreateContainer, O::CreateTtl], create2_response().prop_map(Response::Create2)),
        with(&[O::Exists, O::SetData, O::SetAcl], stat().prop_map(Response::Stat)),
        with(&[O::GetData, O::Reconfig], get_data_response().prop_map(Response::GetData)),
        with(&[O::GetAcl], get_acl_response().prop_map(Response::GetAcl)),
        with(&[O::GetChildren, O::GetEphemerals], children_response().prop_map(Response::Children)),
        with(&[O::GetChildren2], children2_response().prop_map(Response::Children2)),
        with(&[O::Sync], path_request().prop_map(Response::Sync)),
        with(&[O::Multi, O::MultiRead], multi_response().prop_map(Response::Multi)),
        with(
            &[O::GetAllChildrenNumber],
            int().prop_map(|total_number| Response::AllChildrenNumber(GetAllChildrenNumberResponse { total_number }))
        ),
        with(&[O::WhoAmI], who_am_i_response().prop_map(Response::WhoAmI)),
        with(&[O::AddWatch], error_code().prop_map(|err| Response::AddWatch(ErrorResponse { err }))),
        with(&[O::Sasl], sasl_token().prop_map(Response::Sasl)),
    ]
}

/// Replies with no body (§5: delete, ping, auth, setWatches(2), checkWatches, removeWatches,
/// closeSession, check, deleteContainer; addWatch tolerates an empty body).
pub(crate) const EMPTY_REPLY_OPS: &[OpCode] = &[
    OpCode::Delete,
    OpCode::Ping,
    OpCode::Auth,
    OpCode::SetWatches,
    OpCode::SetWatches2,
    OpCode::CheckWatches,
    OpCode::RemoveWatches,
    OpCode::CloseSession,
    OpCode::Check,
    OpCode::DeleteContainer,
    OpCode::AddWatch,
];

/// Opcodes of `zookeeper-protocol.md` §5.
pub(crate) const KNOWN_OPS: &[i32] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102, 103, 104, 105, 106,
    107, -10, -11, -1,
];

/// Error codes of `zookeeper-protocol.md` §11.
pub(crate) const KNOWN_ERRORS: &[i32] = &[
    0, -1, -2, -3, -4, -5, -6, -7, -8, -12, -13, -14, -100, -101, -102, -103, -108, -110, -111, -112, -113, -114, -115,
    -118, -119, -120, -121, -122, -123, -124, -125, -127,
];

/// Event types and keeper states of §8.2, watcher types and addWatch modes of §8.3.
pub(crate) const KNOWN_EVENTS: &[i32] = &[-1, 1, 2, 3, 4, 5, 6, 7];
pub(crate) const KNOWN_STATES: &[i32] = &[-1, 0, 1, 3, 4, 5, 6, 7, -112];
pub(crate) const KNOWN_WATCHER_TYPES: &[i32] = &[1, 2, 3, 4, 5];
pub(crate) const KNOWN_ADD_WATCH_MODES: &[i32] = &[0, 1];
