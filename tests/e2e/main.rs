mod connector_fusion;
