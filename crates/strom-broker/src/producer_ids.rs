//! Producer ids for InitProducerId, taken from blocks the controller allocates (so no id is
//! ever handed out twice, also across restarts: a block is durable in the metadata log before
//! it is used, and a restart starts a new block).

use strom_metadata::{Controller, ProducerIdsBlock};
use strom_protocol::ApiError;
use tokio::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct ProducerIds {
    /// The block being handed out and the next id in it.
    current: Mutex<Option<(ProducerIdsBlock, i64)>>,
}

impl ProducerIds {
    pub(crate) async fn next(
        &self,
        controller: &Controller,
        node_id: i32,
    ) -> Result<i64, ApiError> {
        let mut current = self.current.lock().await;
        let exhausted = current
            .as_ref()
            .is_none_or(|(block, next)| *next > block.last_producer_id());
        if exhausted {
            // A single node has no broker epoch to prove; -1 skips the check.
            let block = controller.allocate_producer_ids(node_id, -1).await?;
            *current = Some((block, block.first_producer_id));
        }
        let (_, next) = current
            .as_mut()
            .ok_or_else(|| ApiError::bare(strom_protocol::ErrorCode::UnknownServerError))?;
        let id = *next;
        *next += 1;
        Ok(id)
    }
}
